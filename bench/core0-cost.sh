#!/usr/bin/env bash
# ad hoc: what each proxy costs the OTHER core (wrk + upstream nginx on CPU 0)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_setup core0
bench_small_request_proxies
up_worker=$(pgrep -P "$(cat "$W/upstream.pid")" | head -1)
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
cpu() { awk -v c="cpu$1" '$1==c {print $2+$3+$4+$7+$8, $5}' /proc/stat; }
for round in 1 2; do
for t in "nginx:18601:$nginx_worker" "fluxgate:18603:$fluxgate_pid"; do
  IFS=: read -r name port pid <<<"$t"
  taskset -c 0 wrk -t1 -c${CONNS:-64} -d2s "http://127.0.0.1:$port/health" > /dev/null
  taskset -c 0 wrk -t1 -c${CONNS:-64} -d8s "http://127.0.0.1:$port/health" > "$W/wrk.txt" &
  wp=$!; sleep 1
  p0=$(ticks $pid); u0=$(ticks $up_worker); w0=$(ticks $wp); c00=$(cpu 0); c10=$(cpu 1)
  perf stat -x, -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto -p "$up_worker" -o "$W/up.perf" -- sleep 5 &
  upp=$!
  perf stat -x, -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto -p "$wp" -o "$W/wrk.perf" -- sleep 5
  wait $upp || true
  p1=$(ticks $pid); u1=$(ticks $up_worker); w1=$(ticks $wp); c01=$(cpu 0); c11=$(cpu 1)
  r0=$(curl -s http://127.0.0.1:20603/metrics | awk '/^fluxgate_requests_total/ {s+=$2} END {print s+0}')
  wait $wp
  rps=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.txt")
  python3 - "$name" "$rps" "$p0" "$p1" "$u0" "$u1" "$w0" "$w1" "$c00" "$c01" "$c10" "$c11" <<'PY'
import sys
n,rps=sys.argv[1],float(sys.argv[2])
f=lambda a,b:[int(y)-int(x) for x,y in zip(a.split(),b.split())]
a=sys.argv[3:]
req=rps*5; us=lambda t: t/100*1e6/req
p=f(a[0],a[1]); u=f(a[2],a[3]); w=f(a[4],a[5]); c0=f(a[6],a[7]); c1=f(a[8],a[9])
print(f"{n:8s} {rps:8.0f} rps | proxy u/s {us(p[0]):.2f}/{us(p[1]):.2f} | upstream u/s {us(u[0]):.2f}/{us(u[1]):.2f} | wrk u/s {us(w[0]):.2f}/{us(w[1]):.2f} | cpu0 busy {c0[0]/(c0[0]+c0[1]):.0%} cpu1 busy {c1[0]/(c1[0]+c1[1]):.0%}")
PY
  for f in up wrk; do echo -n "   $f per req: "; awk -F, -v r="$rps" '$1>0 {split($3,a,":"); printf "%s %.2f  ", a[2], $1/(r*5)}' "$W/$f.perf"; echo; done
done; done
