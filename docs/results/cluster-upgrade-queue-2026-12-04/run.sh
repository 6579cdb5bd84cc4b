#!/usr/bin/env bash
# In-place upgrade (SIGUSR2) of a cluster-mode gateway (cluster.replica_id set or not),
# under load (hey -c20 for 6 s, the upstream answering in 200 ms): which fields the
# lease hash (up:capacity) holds, sampled every 50 ms through the upgrade. The gateway
# runs a copy of BIN (an upgrade starts the binary at its own path again).
# REPLICA_ID (gw1; empty: the default, host name and pid). Both processes write an access
# log: the 503s are counted before and after the SIGUSR2.
set -u
REPLICA_ID=${REPLICA_ID-gw1}
BIN=$(realpath "${BIN:-.build/release/fluxgate}")
W=$(mktemp -d); pids=()
# Waits for what it started to exit (a redis-server still shutting down holds the port
# the next run binds).
trap 'kill "${pids[@]}" 2>/dev/null; pkill -f "$W/fluxgate" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cp "$BIN" "$W/fluxgate"
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:18971"
admin_listen: "127.0.0.1:18972"
workers: 1
demo: { enabled: false }
upstreams: [{ url: "http://127.0.0.1:19971", max_concurrency: 30 }]
rate_limit: { global: { enabled: false } }
access_log: { enabled: true, path: "$W/access.log" }
cluster: { redis_url: "redis://127.0.0.1:19379", key_prefix: up${REPLICA_ID:+, replica_id: $REPLICA_ID} }
C
redis-server --port 19379 --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 & pids+=($!)
"$W/fluxgate" demo-upstream --port 19971 --instance a --workers 1 --latency-ms 200 >"$W/demo.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do redis-cli -p 19379 ping >/dev/null 2>&1 && break; sleep 0.1; done
"$W/fluxgate" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & gw=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18971/health && break; sleep 0.1; done
hey -c 20 -z 6s http://127.0.0.1:18971/health >"$W/hey.txt" 2>&1 & load=$!
sleep 2
# The new process reads the config file again: it writes an access log of its own.
sed -i "s|$W/access.log|$W/access-new.log|" "$W/gw.yaml"
upgrade_at=$(date +%s.%N)
echo "t=0 SIGUSR2 to $gw"; kill -USR2 "$gw"
last=""
for i in $(seq 80); do
  now=$(redis-cli -p 19379 hkeys up:capacity | sort | tr '\n' ' ')
  [ "$now" != "$last" ] && echo "t=$((i * 50)) ms  up:capacity fields: $now" && last=$now
  sleep 0.05
done
wait $load
echo "old process $gw: $(kill -0 "$gw" 2>/dev/null && echo running || echo exited)"
grep -E "Slowest|Fastest|Average|Requests/sec" "$W/hey.txt"; grep -E "(50|90|99)% in" "$W/hey.txt"; grep -A3 "Status code distribution" "$W/hey.txt"
echo "after the load: up:capacity fields: $(redis-cli -p 19379 hkeys up:capacity | tr '\n' ' ')"
# Each 503 in the access log (both processes), before and after the SIGUSR2: those
# before are the load's first burst on a lone idle replica (docs/SCALING.md, "Early
# renewal"), not the upgrade.
sleep 1.2  # the access log is flushed every second
python3 - "$W/access.log" "$W/access-new.log" "$upgrade_at" <<'PY'
import sys, datetime
at = float(sys.argv[3])
print("SIGUSR2 at", datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat(timespec="milliseconds"))
for name, path in (("old process", sys.argv[1]), ("new process", sys.argv[2])):
    before, after = 0, []
    for line in open(path):
        if " status=503 " not in line: continue
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        t = datetime.datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).timestamp()
        if t < at: before += 1
        else: after.append(f'{fields["time"][11:]} {fields.get("shed_reason")}')
    span = f" ({after[0]} … {after[-1]})" if after else ""
    print(f"  {name}: {before} × 503 before the SIGUSR2 (the load's first burst), {len(after)} from it on{span}")
PY
echo "the new process's sheds and renewals:"
curl -s http://127.0.0.1:18972/metrics | grep -E '^fluxgate_(shed_total|requests_shed_total|cluster_early_renewals_total|cluster_syncs_total)' | grep -v ' 0$'

grep -E "cluster|SIGUSR2|SIGTERM|upgrade|drain" "$W/gw.log" | sed 's/^[^ ]* //'
