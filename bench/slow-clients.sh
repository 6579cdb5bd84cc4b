#!/usr/bin/env bash
# Slow and hostile clients against normal traffic (issue 13, docs/SECURITY.md).
#
#   bash bench/slow-clients.sh            # 2000 stalled uploads, 500 trickling 1 MB uploads,
#                                         # 2000 slowloris heads, 500 non-readers
#   bash bench/slow-clients.sh --ci       # 200 / 100 / 200 / 50, shorter phases (run by .ci/run)
#
# One nginx upstream (GET /health, and a 16 MiB /big for the non-readers), Fluxgate
# in front with max_concurrency 1000 (S = 670) and default timeouts. Phases:
#   A  wrk alone (50 connections, GET /health)                       -> baseline
#   B  stalled uploads, trickling large uploads (past the 64 KiB memory buffer: spooled
#      to disk, limits.request_spool_bytes) + slowloris heads, wrk again -> goodput, p99
#      then attackers alone: admission slots in flight               -> target 0
#   C  + 500 clients that never read a 16 MiB response, wrk again     -> goodput, p99
#      then attackers alone: slots held (by the non-readers only, until timeouts.client_send)
# RSS of the gateway is sampled every second. Raw output goes to OUT (default
# docs/results/slow-clients-<date>/), a summary to stdout.
set -euo pipefail
USAGE_ARGS=--ci; source "$(dirname "$0")/lib.sh"

CI=0
[ "${1:-}" = "--ci" ] && CI=1
if [ "$CI" = 1 ]; then
  UPLOADS=200; LARGE=100; TRICKLE=200; READERS=50; PHASE=5
else
  UPLOADS=${UPLOADS:-2000}; LARGE=${LARGE:-500}; TRICKLE=${TRICKLE:-2000}; READERS=${READERS:-500}; PHASE=${PHASE:-15}
fi
PORT=${PORT:-18480}; UPSTREAM_PORT=${UPSTREAM_PORT:-18481}; ADMIN_PORT=$((PORT + 2000))

bench_need wrk "apt-get install wrk"
bench_need nginx "apt-get install nginx-light"
bench_need curl "apt-get install curl"
bench_setup slow-clients
bench_ports_free "$PORT" "$UPSTREAM_PORT" "$ADMIN_PORT"
SUFFIX=""
[ "$CI" = 1 ] && SUFFIX=-ci
OUT=${OUT:-docs/results/slow-clients-$(date +%F)$SUFFIX}
mkdir -p "$OUT"

chmod 755 "$W"
head -c $((16 << 20)) /dev/zero >"$W/big"
chmod 644 "$W/big"
cat >"$W/upstream.conf" <<C
worker_processes 1; daemon off; pid $W/upstream.pid; error_log $W/upstream.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  server { listen 127.0.0.1:$UPSTREAM_PORT;
    location = /health { default_type application/json; return 200 '{"status":"UP","service":"upstream"}'; }
    location = /big { default_type application/octet-stream; alias $W/big; } } }
C
nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
bench_wait nginx "$UPSTREAM_PORT"

cat >"$W/gateway.conf" <<C
listen: "127.0.0.1:$PORT"
admin_listen: "127.0.0.1:$ADMIN_PORT"
upstreams:
  - { name: nginx, url: "http://127.0.0.1:$UPSTREAM_PORT", max_concurrency: 1000 }
rate_limit: { global: { enabled: false } }
reload: { watch: false }
C
cp "$W/gateway.conf" "$OUT/gateway.conf"
"$BIN" --config "$W/gateway.conf" >"$W/gateway.log" 2>&1 & GW=$!; pids+=($GW)
bench_wait fluxgate "$PORT"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$GW/status"; }
inflight() { curl -sf "http://127.0.0.1:$ADMIN_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["admission"]["in_flight"])'; }
( while kill -0 "$GW" 2>/dev/null; do echo "$(date +%s) $(rss_kib)"; sleep 1; done ) >"$OUT/rss.txt" & pids+=($!)

run_wrk() {  # NAME
  wrk -t1 -c50 -d"${PHASE}s" --latency "http://127.0.0.1:$PORT/health" >"$OUT/wrk-$1.txt" 2>&1
}
# Admission slots in flight with only the attackers connected (wrk stopped).
sample_slots() {  # NAME
  for _ in 1 2 3; do inflight; sleep 1; done >"$OUT/slots-$1.txt"
}

echo "A: wrk alone"
rss_before=$(rss_kib)
run_wrk baseline

echo "B: $UPLOADS stalled uploads + $LARGE trickling 1 MB uploads + $TRICKLE slowloris heads"
ATTACK_SECONDS=$((4 * PHASE + 20))
python3 bench/slow_attackers.py --port "$PORT" --uploads "$UPLOADS" --large "$LARGE" --trickle "$TRICKLE" --readers "$READERS" \
  --readers-after $((PHASE + 8)) --seconds "$ATTACK_SECONDS" >"$OUT/attackers.jsonl" 2>"$OUT/attackers.err" & ATT=$!; pids+=($ATT)
sleep 3
run_wrk uploads-slowloris
sample_slots uploads-slowloris

echo "C: + $READERS clients that never read a 16 MiB response"
sleep 4
run_wrk all-attackers
sample_slots all-attackers
wait "$ATT" || true
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$OUT/metrics-end.txt"
curl -sf "http://127.0.0.1:$ADMIN_PORT/stats" >"$OUT/stats-end.json"

python3 - "$OUT" "$rss_before" <<'PY' | tee "$OUT/summary.txt"
import json, re, sys, pathlib
out, rss_before = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def wrk(name):
    text = (out / f"wrk-{name}.txt").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: (.*)", text)
    return rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0, sockets.group(1) if sockets else "none"
base = wrk("baseline")
print(f"machine: {open('/proc/cpuinfo').read().count('processor')} cores; wrk -t1 -c50 GET /health through Fluxgate (2 event loops) to one nginx")
print(f"{'phase':<34}{'req/s':>10}{'vs A':>8}{'p99 ms':>9}{'non-2xx':>9}  socket errors")
for name, label in [("baseline", "A  wrk alone"), ("uploads-slowloris", "B  + stalled uploads, slowloris"),
                    ("all-attackers", "C  + non-readers")]:
    rps, p99, non2xx, sockets = wrk(name)
    print(f"{label:<34}{rps:>10.0f}{rps / base[0]:>8.2f}{p99:>9.2f}{non2xx:>9}  {sockets}")
for name, label in [("uploads-slowloris", "B"), ("all-attackers", "C")]:
    slots = [int(x) for x in (out / f"slots-{name}.txt").read_text().split()]
    print(f"admission slots in flight, attackers only, phase {label}: {slots}")
lines = [json.loads(l) for l in (out / "attackers.jsonl").read_text().splitlines() if l.strip()]
peak = {k: max(l[k]["open"] for l in lines if k in l) for k in ("uploads", "large", "trickle", "readers")}
summary = lines[-1]["summary"]
print(f"attackers connected at peak: {peak}")
print("closed by the gateway (408 answers): " + ", ".join(
    f"{k} {v['closed_by_gateway']} ({v['answered_408']})" for k, v in summary.items()))
rss = [int(l.split()[1]) for l in (out / "rss.txt").read_text().splitlines() if len(l.split()) == 2]
print(f"gateway RSS: {rss_before / 1024:.1f} MiB before, peak {max(rss) / 1024:.1f} MiB, last {rss[-1] / 1024:.1f} MiB")
metrics = (out / "metrics-end.txt").read_text()
for line in metrics.splitlines():
    if line.startswith(("fluxgate_timeouts_total", "fluxgate_requests_refused_total", "fluxgate_request_bodies_spooled_total",
                        "fluxgate_request_spool_refused_total")) and not line.endswith(" 0"):
        print(line)
PY
