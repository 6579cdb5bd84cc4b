#!/usr/bin/env bash
# Cluster mode under lasting overload, watched for leaks: two replicas sharing S = 20
# through one Redis (one demo upstream answering in 20 ms, max_concurrency 30), each
# offered `hey -c40` (new connections for a quarter of the clients: -disable-keepalive),
# so shares move, early renewals and retries run and most requests are shed. Redis is
# killed at a third of the run and started again 10 s later. Every 10 s: each gateway's
# RSS (KiB) and open descriptors, its share and renewals (/stats, /metrics). At the end:
# the RSS growth from the first sample after warm-up to the last, and the descriptors
# once the load has stopped.
# DURATION seconds (600). BIN (.build/release/fluxgate).
set -u
DURATION=${DURATION:-600}
BIN=$(realpath "${BIN:-.build/release/fluxgate}")
W=$(mktemp -d); pids=()
rpid=""
trap 'kill "${pids[@]}" $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
for n in 1 2; do
  cat >"$W/gw$n.yaml" <<C
listen: "127.0.0.1:1897$n"
admin_listen: "127.0.0.1:1898$n"
workers: 1
demo: { enabled: false }
upstreams: [{ url: "http://127.0.0.1:19971", max_concurrency: 30 }]
rate_limit: { global: { enabled: true, rate: 800, burst: 80 } }
cluster: { redis_url: "redis://127.0.0.1:19379", key_prefix: soak, replica_id: gw$n }
C
done
redis() { redis-server --port 19379 --bind 127.0.0.1 --save '' --appendonly no --dir "$W" >>"$W/redis.log" 2>&1 & echo $!; }
rpid=$(redis)
sleep 0.3; kill -0 "$rpid" 2>/dev/null || { echo "redis-server did not start (port 19379 taken?)"; cat "$W/redis.log"; exit 1; }
"$BIN" demo-upstream --port 19971 --instance a --workers 1 --latency-ms 20 >"$W/demo.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do redis-cli -p 19379 ping >/dev/null 2>&1 && break; sleep 0.1; done
gws=()
for n in 1 2; do "$BIN" --config "$W/gw$n.yaml" >"$W/gw$n.log" 2>&1 & gws+=($!); pids+=($!); done
for n in 1 2; do for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:1897$n/health" && break; sleep 0.1; done; done
for n in 1 2; do
  hey -c 30 -z "${DURATION}s" "http://127.0.0.1:1897$n/health" >"$W/hey$n.txt" 2>&1 & pids+=($!)
  hey -c 10 -z "${DURATION}s" -disable-keepalive "http://127.0.0.1:1897$n/health" >"$W/hey$n-new.txt" 2>&1 & pids+=($!)
done
sample() {
  local line="t=$1"
  for n in 1 2; do
    local p=${gws[$((n - 1))]}
    local rss=$(awk '/^VmRSS/{print $2}' /proc/$p/status) fds=$(ls /proc/$p/fd | wc -l)
    local m=$(curl -s -m 2 "http://127.0.0.1:1898$n/metrics")
    local share=$(echo "$m" | awk '/^fluxgate_cluster_share_slots /{print $2}')
    local early=$(echo "$m" | awk '/^fluxgate_cluster_early_renewals_total /{print $2}')
    local syncs=$(echo "$m" | awk '/^fluxgate_cluster_syncs_total\{result="ok"\}/{print $2}')
    line+="  gw$n rss ${rss} KiB fds ${fds} share ${share} syncs_ok ${syncs} early ${early}"
  done
  echo "$line"
}
start=$(date +%s); killed=0
while [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
  t=$(( $(date +%s) - start ))
  sample "$t"
  if [ $killed = 0 ] && [ "$t" -ge $((DURATION / 3)) ]; then
    echo "t=$t Redis killed"; kill -9 "$rpid"; killed=1; restart_at=$((t + 10))
  fi
  if [ $killed = 1 ] && [ "$t" -ge "${restart_at:-0}" ]; then rpid=$(redis); echo "t=$t Redis started again"; killed=2; fi
  sleep 10
done
sleep 3
echo "after the load:"; sample end
for n in 1 2; do
  echo "gw$n outcomes and sheds: $(curl -s "http://127.0.0.1:1898$n/metrics" | grep -E '^fluxgate_(request_outcomes_total|shed_total)' | grep -v ' 0$' | grep -v dry_run | sed 's/^fluxgate_//' | tr '\n' ' ')"
done
for n in 1 2; do
  echo "hey gw$n keep-alive: $(grep -E 'Requests/sec' "$W/hey$n.txt" | tr -s ' \t' ' ') $(grep -A4 'Status code distribution' "$W/hey$n.txt" | grep '\[' | tr -s ' \t' ' ' | tr '\n' ';')"
  echo "hey gw$n new connections: $(grep -E 'Requests/sec' "$W/hey$n-new.txt" | tr -s ' \t' ' ') $(grep -A4 'Status code distribution' "$W/hey$n-new.txt" | grep '\[' | tr -s ' \t' ' ' | tr '\n' ';') errors: $(grep -c 'Error distribution' "$W/hey$n-new.txt")"
done
# (hey keeps at most 1 000 000 results: its status counts cover the first million answers.)
for n in 1 2; do grep -E "error|warning|upstream (down|up)|cluster" "$W/gw$n.log" | sed "s/^/gw$n: /" | cut -c1-260; done
