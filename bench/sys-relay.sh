#!/usr/bin/env bash
# ad hoc
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup sysrelay
bench_nginx_health_upstream 19601 0
bench_relay_floor 18604 19601
bench_wait relay 18604
pid=$relay_pid
taskset -c 0 wrk -t1 -c${CONNS:-64} -d3s "http://127.0.0.1:18604/health" > /dev/null
perf stat -x, -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev -p "$pid" -o "$W/r.perf" -- sleep 8 &
sp=$!
taskset -c 0 wrk -t1 -c${CONNS:-64} -d8s "http://127.0.0.1:18604/health" | grep -E "Requests/sec|requests in" | tr '\n' ' '
wait $sp
awk -F, '$1 > 0 { printf "  %-40s %d\n", $3, $1 }' "$W/r.perf"
