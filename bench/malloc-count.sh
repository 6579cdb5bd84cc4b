#!/usr/bin/env bash
# Allocations per request (a measurement, not a test): Fluxgate with a malloc counter
# preloaded (bench/malloc/count.c), in front of one nginx upstream, under
# `wrk -t1 -c64 GET /health` — once proxying, once shedding every request (global
# bucket of 1/s). Warm-up run, then counter read, measured run, counter read:
# mallocs / requests of the measured run — which includes wrk's 64 new connections, the
# upstream connections they open and the gateway's background work (health probes,
# histogram rotation). Then "steady": one more run on the same connections, the counter
# and the gateway's request count (/stats) read 1 s in and again DUR s later — the
# allocations of requests on open connections, background work still included.
# Needs gcc, nginx-light and wrk (apt).
# Env: DUR seconds of the measured run (4); MALLOC_PATH (/health: 7 bytes, which a Swift
# String holds inline — a realistic path such as /api/v1/orders/1234567?expand=items is
# longer); MALLOC_REQUEST_ID=1 (each request carries a 36-byte X-Request-ID, as behind
# another proxy); REQUEST=browser (a browser's 14 header fields, bench_echo_payload's);
# MALLOC_PER_CLIENT=ip or header (per-client limits on, keyed by the address or by a
# 40-byte X-API-Key); MALLOC_XFF=1 (the gateway behind a trusted proxy: each request
# carries X-Forwarded-For); MALLOC_YAML (YAML lines added to the gateway's config, such
# as 'pool: { max_requests_per_connection: 0 }': upstream connections never recycled).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-4}
bench_need gcc "apt-get install -y gcc"
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_setup malloc
bench_echo_payload
wrk_args=(); [ "${REQUEST:-}" = browser ] && wrk_args=(-s "$W/browser.lua")
# A client's own request ID, as a proxy in front sends it (a UUID: 36 bytes).
[ -n "${MALLOC_REQUEST_ID:-}" ] && wrk_args+=(-H "X-Request-ID: 9b2f0c4e-7d1a-4c3b-8e5f-2a6d9c0b1e7f")
# Per-client limits on (a bucket too large to refuse anything): keyed by the client
# address (ip), or by a 40-byte API key every request carries (header).
per_client=""
case "${MALLOC_PER_CLIENT:-}" in
  ip) per_client='{ enabled: true, rate: 1000000000, burst: 1000000000 }' ;;
  header) per_client='{ enabled: true, rate: 1000000000, burst: 1000000000, key: "header:X-API-Key" }'
          wrk_args+=(-H "X-API-Key: sk_live_4f9a2c7e1b8d3f6a0e5c9b2d7a1f4e8c3b6d") ;;
esac
# Behind a trusted proxy (127.0.0.0/8 in trusted_proxies): each request names its client.
[ -n "${MALLOC_XFF:-}" ] && wrk_args+=(-H "X-Forwarded-For: 203.0.113.9")
gcc -O2 -shared -fPIC -o "$W/count.so" bench/malloc/count.c -ldl
bench_nginx_health_upstream 19701 0
for mode in proxied:18701:"{ enabled: false }" shed:18702:"$BENCH_SHED_ALL"; do
  IFS=: read -r name port bucket <<<"$mode"
  bench_fluxgate_config "$port" 19701 "$bucket" >"$W/$name.yaml"
  [ -n "$per_client" ] && sed -i "s/per_client: { enabled: false }/per_client: $per_client/" "$W/$name.yaml"
  [ -n "${MALLOC_XFF:-}" ] && echo 'trusted_proxies: ["127.0.0.0/8"]' >>"$W/$name.yaml"
  [ -n "${MALLOC_YAML:-}" ] && echo "$MALLOC_YAML" >>"$W/$name.yaml"
  LD_PRELOAD="$W/count.so" taskset -c 1 "$BIN" --config "$W/$name.yaml" 2>"$W/$name.err" >/dev/null & pid=$!; pids+=("$pid")
  bench_wait "$name gateway" "$port"
  taskset -c 0 wrk -t1 -c64 -d2s "${wrk_args[@]}" "http://127.0.0.1:$port${MALLOC_PATH:-/health}" >/dev/null
  kill -WINCH "$pid"; sleep 0.3
  requests=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" "${wrk_args[@]}" "http://127.0.0.1:$port${MALLOC_PATH:-/health}" | awk '/requests in/{print $1}')
  kill -WINCH "$pid"; sleep 0.3
  served() { curl -sf "http://127.0.0.1:$(( port + 2000 ))/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"]["total"])'; }
  taskset -c 0 wrk -t1 -c64 -d"$(( DUR + 2 ))s" "${wrk_args[@]}" "http://127.0.0.1:$port${MALLOC_PATH:-/health}" >/dev/null & wrk_pid=$!
  sleep 1; kill -WINCH "$pid"; sleep 0.1; r1=$(served)
  sleep "$DUR"; kill -WINCH "$pid"; sleep 0.1; r2=$(served)
  wait "$wrk_pid"
  python3 - "$W/$name.err" "$requests" "$name" "$r1" "$r2" <<'PY'
import re, sys
err, requests, name, r1, r2 = sys.argv[1:]
counts = [int(n) for n in re.findall(r"mallocs=(\d+)", open(err).read())]
print(f"{name:8} {int(requests):9} requests  {(counts[1] - counts[0]) / int(requests):6.2f} allocations per request (whole run)")
steady = int(r2) - int(r1)
print(f"{name:8} {steady:9} requests  {(counts[3] - counts[2]) / steady:6.2f} allocations per request (steady: open connections)")
PY
done
