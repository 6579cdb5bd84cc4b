#!/usr/bin/env bash
# Per-connection fairness (a diagnostic, not a test): nginx and Fluxgate, one worker /
# event loop each on CPU 1, in front of compare.sh's upstream nginx (CPU 0), under
# `wrk -tN -cN` (one connection per wrk thread, CPU 0) with bench/conn_fairness.lua:
# how many requests each connection had answered, and their spread (cv = stdev/mean).
# A proxy that serves some connections more often than others shows a wide spread —
# the question behind p99 at 256 connections in docs/PERFORMANCE.md.
# Env: CONNS (256), DUR (8), ROUNDS (2), EXTRA (YAML lines added to Fluxgate's config).
# Needs nginx-light and wrk (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
CONNS=${CONNS:-256} DUR=${DUR:-8} ROUNDS=${ROUNDS:-2}
bench_setup fair
bench_echo_payload; head -c 16 /dev/urandom > "$W/mib"
bench_nginx_upstream_conf 19601 19602 19603
taskset -c 0 nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
cat > "$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 32768; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:19601; server 127.0.0.1:19602; server 127.0.0.1:19603; keepalive 512; }
  server { listen 127.0.0.1:18601 backlog=16384;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
cat > "$W/fg.yaml" <<C
listen: "127.0.0.1:18603"
admin_listen: "127.0.0.1:20603"
workers: 1
upstreams:
  - { name: up-1, url: "http://127.0.0.1:19601", max_concurrency: 30000 }
  - { name: up-2, url: "http://127.0.0.1:19602", max_concurrency: 30000 }
  - { name: up-3, url: "http://127.0.0.1:19603", max_concurrency: 30000 }
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
pool: { max_idle_per_upstream: 512 }
demo: { enabled: false }
${EXTRA:-}
C
taskset -c 1 nginx -c "$W/nginx.conf" -e "$W/nginx.err" & pids+=($!)
taskset -c 1 "$BIN" --config "$W/fg.yaml" > "$W/fg.log" 2>&1 & pids+=($!)
bench_wait nginx 18601; bench_wait fluxgate 18603
for round in $(seq "$ROUNDS"); do
  for t in nginx:18601 fluxgate:18603; do
    printf "%-9s r%s " "${t%%:*}" "$round"
    taskset -c 0 wrk -t"$CONNS" -c"$CONNS" -d"${DUR}s" --latency -s bench/conn_fairness.lua "http://127.0.0.1:${t#*:}/health" \
      | awk '/^connections/ { c = $0 } /Requests\/sec/ { r = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } END { printf "%s rps p50 %s p99 %s | %s\n", r, p50, p99, c }'
  done
done
