#!/usr/bin/env bash
# Access-log rotation under load: wrk for 12 s, three rotations (mv, then SIGUSR1).
cd /tmp/rot && rm -f access.log* wrk.txt reopen.*
printf 'listen: "127.0.0.1:8080"\nadmin_listen: "127.0.0.1:9090"\nreload: { watch: false }\naccess_log: { enabled: true, path: "/tmp/rot/access.log" }\n' > gw.conf
/work/main/.build/release/fluxgate --config gw.conf > gw.out 2> gw.log & gw=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:9090/readyz && break; sleep 0.1; done
wrk -t2 -c32 -d12s http://127.0.0.1:8080/health > wrk.txt & w=$!
for i in 1 2 3; do sleep 3; mv access.log access.log.$i; kill -USR1 $gw; python3 -c 'import time; print(int(time.time()*1000))' > reopen.$i; done
wait $w; sleep 2
curl -s http://127.0.0.1:9090/metrics | grep -E '^fluxgate_request_outcomes_total\{outcome="proxied"\}|^fluxgate_access_log_dropped_total'
kill $gw; wait $gw
grep -E "requests in" wrk.txt; wc -l access.log*
python3 - <<'PY'
import re, datetime
def times(f):
    out=[]
    for line in open(f):
        m=re.search(r'time=(\S+)Z', line)
        out.append(datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()*1000)
    return out
files=["access.log.1","access.log.2","access.log.3","access.log"]
for a,b,i in zip(files,files[1:],range(1,4)):
    ta,tb=times(a),times(b); r=int(open(f"reopen.{i}").read()); first=min(tb)
    print(f"rotation {i}: old file's last line {max(ta)-r:+.0f} ms from the signal, new file's first line {first-r:+.0f} ms; lines in the old file later than the new file's first: {sum(1 for t in ta if t>first)}")
PY
