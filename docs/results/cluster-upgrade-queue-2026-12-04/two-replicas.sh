#!/usr/bin/env bash
# In-place upgrade (SIGUSR2) of one of two cluster-mode replicas under load: gw1 and gw2
# share S = 20 (one demo upstream answering in 200 ms, max_concurrency 30) through one
# Redis; `hey -c10 -z 6s` on each (together 20 clients, all of S). gw1 is upgraded 2 s
# in. Prints each hey's status codes, every replica process's 503s before and after the
# SIGUSR2 (from their access logs), and the largest sum of held slots the lease hash
# showed, sampled every 20 ms (the ledger's invariant: ≤ S).
# REPLICA_ID1 (gw1; empty: the default id, host name and pid). BIN (.build/release/fluxgate).
set -u
REPLICA_ID1=${REPLICA_ID1-gw1}
BIN=$(realpath "${BIN:-.build/release/fluxgate}")
W=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; pkill -f "$W/fluxgate" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cp "$BIN" "$W/fluxgate"
for n in 1 2; do
  id=$([ $n = 1 ] && echo "$REPLICA_ID1" || echo gw2)
  cat >"$W/gw$n.yaml" <<C
listen: "127.0.0.1:1897$n"
admin_listen: "127.0.0.1:1898$n"
workers: 1
demo: { enabled: false }
upstreams: [{ url: "http://127.0.0.1:19971", max_concurrency: 30 }]
rate_limit: { global: { enabled: false } }
access_log: { enabled: true, path: "$W/access$n.log" }
cluster: { redis_url: "redis://127.0.0.1:19379", key_prefix: two${id:+, replica_id: $id} }
C
done
redis-server --port 19379 --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 & pids+=($!)
"$W/fluxgate" demo-upstream --port 19971 --instance a --workers 1 --latency-ms 200 >"$W/demo.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do redis-cli -p 19379 ping >/dev/null 2>&1 && break; sleep 0.1; done
"$W/fluxgate" --config "$W/gw1.yaml" >"$W/gw1.log" 2>&1 & gw1=$!
"$W/fluxgate" --config "$W/gw2.yaml" >"$W/gw2.log" 2>&1 & pids+=($!)
for n in 1 2; do for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:1897$n/health" && break; sleep 0.1; done; done
hey -c 10 -z 6s http://127.0.0.1:18971/health >"$W/hey1.txt" 2>&1 & l1=$!
hey -c 10 -z 6s http://127.0.0.1:18972/health >"$W/hey2.txt" 2>&1 & l2=$!
( while kill -0 $l1 2>/dev/null; do redis-cli -p 19379 hvals two:capacity | awk '{s += $1} END {print s + 0}'; sleep 0.02; done > "$W/held.txt" ) &
sleep 2
sed -i "s|$W/access1.log|$W/access1-new.log|" "$W/gw1.yaml"  # the new process's own access log
upgrade_at=$(date +%s.%N)
echo "t=0 SIGUSR2 to gw1 ($gw1)"; kill -USR2 "$gw1"
wait $l1 $l2
for n in 1 2; do echo "hey on gw$n: $(grep -A3 'Status code distribution' "$W/hey$n.txt" | grep '\[' | tr -s ' \t' ' ' | tr '\n' ';')"; done
echo "largest sum of held slots in the lease hash (S = 20): $(sort -n "$W/held.txt" | tail -1), over $(wc -l < "$W/held.txt") samples"
sleep 1.2  # the access logs are flushed every second
python3 - "$upgrade_at" "gw1 (old)=$W/access1.log" "gw1 (new)=$W/access1-new.log" "gw2=$W/access2.log" <<'PY'
import sys, datetime
at = float(sys.argv[1])
for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    before, after = 0, []
    try: lines = open(path).readlines()
    except OSError: lines = []
    for line in lines:
        if " status=503 " not in line: continue
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        t = datetime.datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).timestamp()
        if t < at: before += 1
        else: after.append(f'{fields["time"][11:]} {fields.get("shed_reason")}')
    span = f" ({after[0]} … {after[-1]})" if after else ""
    print(f"  {name}: {before} × 503 before the SIGUSR2, {len(after)} from it on{span}")
PY
