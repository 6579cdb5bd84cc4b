#!/usr/bin/env bash
# System calls of nginx and Fluxgate under the same load (a diagnostic, not a test):
# one worker / event loop each on CPU 1 in front of compare.sh's upstream nginx (CPU 0),
# `wrk -t1 -cCONNS GET /health` (CPU 0) for 8 s after a 3 s warm-up, the proxy's system
# calls counted with `perf stat` on the syscall tracepoints (needs perf, nginx-light,
# wrk). Requests per `epoll_wait` is how much one event-loop iteration handles.
# Env: CONNS (256).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup sys
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
C
taskset -c 1 nginx -c "$W/nginx.conf" -e "$W/nginx.err" & pids+=($!)
taskset -c 1 "$BIN" --config "$W/fg.yaml" > "$W/fg.log" 2>&1 & pids+=($!); fg=$!
bench_wait nginx 18601; bench_wait fluxgate 18603
nginx_worker=$(pgrep -P $(cat $W/nginx.pid) | head -1)
for t in "nginx:18601:$nginx_worker" "fluxgate:18603:$fg"; do
  IFS=: read -r name port pid <<<"$t"
  taskset -c 0 wrk -t1 -c${CONNS:-256} -d3s "http://127.0.0.1:$port/health" > /dev/null
  perf stat -x, -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg -p "$pid" -o "$W/$name.perf" -- sleep 8 &
  sp=$!
  taskset -c 0 wrk -t1 -c${CONNS:-256} -d8s "http://127.0.0.1:$port/health" | grep -E "Requests/sec|requests in" | tr '\n' ' '
  wait $sp
  echo; echo "== $name"; awk -F, '$1 > 0 { printf "  %-40s %d\n", $3, $1 }' "$W/$name.perf"
done
