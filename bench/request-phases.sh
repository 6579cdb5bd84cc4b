#!/usr/bin/env bash
# Where a small request's time goes inside nginx and inside Fluxgate under the same load
# (a diagnostic, not a test): compare.sh's small-request set-up (one worker / event loop
# each on CPU 1, the upstream nginx on CPU 0), `wrk -t1 -cCONNS GET /health` on CPU 0,
# and the proxy's reads, writes and epoll_waits recorded with `perf record` on the
# syscall tracepoints for SECONDS in the middle of the run. bench/request_phases.py then
# follows every client and upstream connection (told apart by their ports, read from
# /proc while the load runs) and prints the distribution of each phase of an exchange:
#   wait     response written to the client -> the client's next request read
#            (the load generator's turn-around plus the time the request sat in the
#            socket until the event loop came to it)
#   forward  client request read -> request written upstream
#   upstream request written upstream -> its response read
#   back     response read from the upstream -> written to the client
#   inside   client request read -> response written to it (forward + upstream + back)
# and the event loop's iterations (events per epoll_wait, time between two).
# Needs perf, nginx-light, wrk. Env: CONNS (256), SECONDS_TRACED (2), EXTRA (YAML
# lines added to Fluxgate's config), RELAY=1 (the relay floor, Sources/RelayFloor, as a
# third proxy).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_need perf "apt-get install linux-perf"
bench_setup phases
bench_small_request_proxies
conns=${CONNS:-256} traced=${SECONDS_TRACED:-2}
events=syscalls:sys_enter_read,syscalls:sys_exit_read,syscalls:sys_enter_recvfrom,syscalls:sys_exit_recvfrom
events+=,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait
events+=,syscalls:sys_exit_accept4,syscalls:sys_exit_accept
echo "# CONNS=$conns SECONDS_TRACED=$traced bash bench/request-phases.sh; $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
targets=("nginx:18601:$nginx_worker" "fluxgate:18603:$fluxgate_pid")
if [ -n "${RELAY:-}" ]; then  # RELAY=1: the relay floor too (one upstream connection per client)
  bench_relay_floor 18605 19601
  bench_wait relay 18605
  targets+=("relay:18605:$relay_pid")
fi
for t in "${targets[@]}"; do
  IFS=: read -r name port pid <<<"$t"
  taskset -c 0 wrk -t1 -c"$conns" -d3s "http://127.0.0.1:$port/health" >/dev/null
  # FROM_START=1: recorded from before wrk's first connection (its connection burst
  # included); else from 2 s in, when the connections are open and the pools warm.
  if [ -n "${FROM_START:-}" ]; then
    perf record -q -e "$events" -p "$pid" -o "$W/$name.data" -- sleep "$traced" 2>/dev/null & perf_pid=$!
    sleep 0.5  # perf is attached
  fi
  taskset -c 0 wrk -t1 -c"$conns" -d$((traced + 4))s --latency "http://127.0.0.1:$port/health" >"$W/$name.wrk" &
  wrk_pid=$!
  if [ -z "${FROM_START:-}" ]; then
    sleep 2
    perf record -q -e "$events" -p "$pid" -o "$W/$name.data" -- sleep "$traced" 2>/dev/null & perf_pid=$!
  fi
  sleep 1
  # Which descriptor is which: socket inodes from /proc/PID/fd, ports from /proc/net/tcp.
  python3 - "$pid" "$port" >"$W/$name.fds" <<'PY'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = {}
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes[link[8:-1]] = int(fd)
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    local, remote, inode = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16), f[9]
    if inode in inodes and f[3] == "01":  # established
        print(inodes[inode], "client" if local == port else "upstream" if 19601 <= remote <= 19603 else "other")
PY
  wait "$perf_pid" "$wrk_pid"
  echo "== $name: $(grep -E 'Requests/sec' "$W/$name.wrk" | tr -s ' ') (wrk, whole run); wrk latency p50 $(awk '$1=="50%"{print $2}' "$W/$name.wrk") p99 $(awk '$1=="99%"{print $2}' "$W/$name.wrk")"
  perf script -i "$W/$name.data" --ns -F tid,time,event,trace 2>/dev/null | python3 bench/request_phases.py "$W/$name.fds"
done
