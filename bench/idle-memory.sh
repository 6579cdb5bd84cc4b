#!/usr/bin/env bash
# Memory per idle keep-alive connection of one Fluxgate (a measurement, not a test):
# one nginx upstream, Fluxgate (`workers: 1`) in front of it, N connections opened by
# bench/idle_conns.py, each sending one `GET /health` and then held idle; the resident
# set before and after, per connection. With a live-allocation counter preloaded
# (bench/malloc/live.c): the heap blocks and their usable bytes held per connection,
# and how many per size class — what the resident growth is made of.
# Env: N (10000), ROUNDS (2), FLUXGATE_BIN (another build), FLUXGATE_YAML (more config),
# UPLOAD (bytes; each connection first sends a POST with a body this large: what an idle
# connection keeps after an upload), IDLE_SETTLE (10 s: how long the connections are held
# idle before the reading — past `timeouts.park_after`, 5 s by default, so the figure is
# that of parked connections; FLUXGATE_YAML='timeouts: { park_after: 0s }' or
# IDLE_SETTLE=1 measures them unparked), TLS=1 (the listener terminates TLS with a
# self-signed certificate made here with openssl; TLS connections are never parked).
# Needs nginx-light and gcc (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-10000}; ROUNDS=${ROUNDS:-2}; export IDLE_UPLOAD_BYTES=${UPLOAD:-0}; export IDLE_SETTLE=${IDLE_SETTLE:-10}
export IDLE_TLS=${TLS:-0}
bench_need nginx "apt-get install -y nginx-light"
bench_need gcc "apt-get install -y gcc"
bench_ports_free 19791 18791
bench_setup idlemem
gcc -O2 -shared -fPIC -o "$W/live.so" bench/malloc/live.c -ldl
bench_nginx_health_upstream 19791 0
tls_yaml=""
if [ "$IDLE_TLS" = 1 ]; then
  bench_tls_certificate
  tls_yaml="tls: { certificate: \"$W/cert.pem\", key: \"$W/key.pem\" }"
fi
bench_fluxgate_config 18791 19791 "" "${FLUXGATE_YAML:-}
$tls_yaml" >"$W/fluxgate.yaml"
echo "# $(date -u +%FT%TZ) $(nproc) cores; $N idle keep-alive $([ "$IDLE_TLS" = 1 ] && echo "TLS ")connections$([ "$IDLE_UPLOAD_BYTES" != 0 ] && echo ", each after a POST of $IDLE_UPLOAD_BYTES bytes"), read after ${IDLE_SETTLE} s idle; $BIN"
run() {  # MODE: plain | counted
  local preload="" pid
  [ "$1" = counted ] && preload="$W/live.so"
  LD_PRELOAD="$preload" taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>"$W/fluxgate.err" & pid=$!; pids+=("$pid")
  local scheme=http; [ "$IDLE_TLS" = 1 ] && scheme=https
  for _ in $(seq 50); do curl -skf -o /dev/null "$scheme://127.0.0.1:18791/health" && break; sleep 0.1; done
  for _ in $(seq 20); do curl -sk -o /dev/null "$scheme://127.0.0.1:18791/health"; done
  if [ "$1" = counted ]; then kill -WINCH "$pid"; sleep 0.3; fi
  IDLE_HOLD_SIGNAL=$([ "$1" = counted ] && echo "$pid" || true) python3 bench/idle_conns.py 18791 "$N" "$pid"
  if [ "$1" = counted ]; then
    sleep 0.3
    python3 - "$W/fluxgate.err" "$N" <<'PY'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.startswith("live=")]
(a, b), n = lines[-2:], int(sys.argv[2])
count = lambda l: int(l[0][5:]); size = lambda l: int(l[1][6:])
print(f"  heap blocks held per connection {(count(b) - count(a)) / n:.2f}, usable bytes {(size(b) - size(a)) / n:.0f}")
ha = dict(x.split(":") for x in a[3:]); hb = dict(x.split(":") for x in b[3:])
per = {k: (int(hb[k]) - int(ha[k])) / n for k in ha}
print("  per size class (usable bytes from-to: blocks per connection):",
      ", ".join(f"{int(k)}-{int(k) + 15 if int(k) < 1008 else 'more'}: {v:.2f}" for k, v in per.items() if abs(v) >= 0.5))
PY
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for round in $(seq "$ROUNDS"); do printf "round %s plain    " "$round"; run plain; done
printf "counted  "; run counted
