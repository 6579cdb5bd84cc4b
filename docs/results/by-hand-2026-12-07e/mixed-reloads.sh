B=/work/main/.build/release/fluxgate
echo "# $(date -u +%FT%TZ) $(cd /work/main && git rev-parse --short HEAD) release build, 2 cores: 60 s of mixed traffic with the application log switching format and the rate limits changing by reload every 2 s, an upstream flapping, /stats and /metrics scraped in a loop"
cp base.yaml gw.yaml
$B --config gw.yaml > access.txt 2> err.txt & pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19090/healthz && break; sleep 0.1; done
hey -z 60s -c 32 -q 300 -H "X-Api-Key: a" http://127.0.0.1:18080/health > hey1.txt & h1=$!
(for i in $(seq 600); do curl -s -o /dev/null -H "X-Api-Key: k$i" -H 'content-type: application/json' --data-binary '{"pad":"xxxxxxxx"}' http://127.0.0.1:18080/api/echo; done) & h2=$!
(for i in $(seq 120); do curl -s -o /dev/null http://127.0.0.1:19090/stats; curl -s -o m.txt http://127.0.0.1:19090/metrics; grep "^fluxgate_rate_limit_clients_evicted_total" m.txt >> evicted.txt || echo none >> evicted.txt; sleep 0.5; done) & h3=$!
echo "t RSS_kB fds"
for t in $(seq 0 2 58); do
  n=$((t / 2 % 4))
  case $n in
    0) { cat base.yaml; echo "log_format: json"; echo "rate_limit: { global: { rate: 5000, burst: 500 }, per_client: { enabled: true, rate: 50, burst: 100, key: 'header:X-Api-Key', max_clients: 200 } }"; } > gw.yaml ;;
    1) { cat base.yaml; echo "log_format: text"; echo "rate_limit: { global: { enabled: false }, per_client: { enabled: true, rate: 50, burst: 100, key: 'header:X-Api-Key', max_clients: 100 } }"; } > gw.yaml ;;
    2) { cat base.yaml; echo "log_format: json"; echo "rate_limit: { global: { rate: 2000, burst: 100 }, per_client: { enabled: false } }"; } > gw.yaml ;;
    3) { cat base.yaml; echo "log_format: json"; echo "log_level: debug"; } > gw.yaml ;;
  esac
  kill -HUP $pid
  [ $((t % 10)) = 0 ] && curl -s -X POST http://127.0.0.1:19502/admin/health/fail > /dev/null
  [ $((t % 10)) = 4 ] && curl -s -X POST http://127.0.0.1:19502/admin/health/recover > /dev/null
  echo "$t $(awk '/VmRSS/{print $2}' /proc/$pid/status) $(ls /proc/$pid/fd | wc -l)"
  sleep 2
done
wait $h1 $h2 $h3
sleep 2; echo "after: $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB, $(ls /proc/$pid/fd | wc -l) fds"
echo "--- hey:"; grep -A5 "Status code distribution" hey1.txt
curl -s http://127.0.0.1:19090/metrics | promtool check metrics; echo "promtool exit=$?"
curl -s http://127.0.0.1:19090/metrics | grep -E "^fluxgate_(config_reloads_total|rate_limit|shed_total\{reason=\"(client_)?rate_limited\",mode=\"enforced)"
kill -TERM $pid; wait $pid; echo "gateway exit=$?"
echo "--- the evicted counter, sampled twice a second (must never go down):"
python3 -c '
v=[float(l.split()[-1]) for l in open("evicted.txt") if not l.startswith("none")]
print(len(v),"samples; first",v[0] if v else None,"last",v[-1] if v else None,"; went down:",any(b<a for a,b in zip(v,v[1:])))'
echo "--- standard error: every line JSON or a text line (none cut or interleaved):"
python3 -c '
import json,re
js=tx=bad=0
for line in open("err.txt"):
    if line.startswith("{"):
        try: json.loads(line); js+=1
        except Exception: bad+=1; print("BAD", line[:200])
    elif re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \w+ ", line): tx+=1
    else: bad+=1; print("BAD", line[:200])
print("json", js, "text", tx, "bad", bad)'
echo "--- access log (stdout, JSON, sampled 1 %): lines and bad ones"
python3 -c '
import json; n=b=0
for l in open("access.txt"):
    n+=1
    try: json.loads(l)
    except Exception: b+=1
print(n,"lines,",b,"not JSON")'
