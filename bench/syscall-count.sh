#!/usr/bin/env bash
# System calls of nginx and Fluxgate under the same load (a diagnostic, not a test):
# one worker / event loop each on CPU 1 in front of compare.sh's upstream nginx (CPU 0),
# `wrk -t1 -cCONNS GET /health` (CPU 0) for 8 s after a 3 s warm-up, the proxy's system
# calls counted with `perf stat` on the syscall tracepoints (needs perf, nginx-light,
# wrk). Requests per `epoll_wait` is how much one event-loop iteration handles.
# Env: CONNS (256), EXTRA (YAML lines added to Fluxgate's config).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup sys
bench_small_request_proxies
for t in "nginx:18601:$nginx_worker" "fluxgate:18603:$fluxgate_pid"; do
  IFS=: read -r name port pid <<<"$t"
  taskset -c 0 wrk -t1 -c${CONNS:-256} -d3s "http://127.0.0.1:$port/health" > /dev/null
  perf stat -x, -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg -p "$pid" -o "$W/$name.perf" -- sleep 8 &
  sp=$!
  taskset -c 0 wrk -t1 -c${CONNS:-256} -d8s "http://127.0.0.1:$port/health" | grep -E "Requests/sec|requests in" | tr '\n' ' '
  wait $sp
  echo; echo "== $name"; awk -F, '$1 > 0 { printf "  %-40s %d\n", $3, $1 }' "$W/$name.perf"
done
