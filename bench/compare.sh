#!/usr/bin/env bash
# Fluxgate next to nginx and HAProxy (a benchmark, not a test).
#
# The same three upstreams (one nginx worker on CPU 0, ports 19601-19603), the same
# wrk load (CPU 0), each proxy on CPU 1 with one worker/thread/event loop, runs
# alternating nginx → HAProxy → Fluxgate [→ fluxgate-b], ROUNDS times per row, each
# round starting one target later than the one before (round 2: HAProxy → Fluxgate →
# … → nginx), so no target always runs first or last: on 2026-12-01 the target that
# always ran last led rows by up to 16 % whichever build it was
# (docs/results/compare-2026-12-01e/, compare-2026-12-01f/). Rows:
#   health64 / health256  GET /health (37-byte JSON) at 64 / 256 connections
#   echo                  POST /api/echo with the ~100-item JSON body (6.6 KB) at 64;
#                         the upstream answers with the same bytes (nginx cannot echo)
#   mib                   GET /mib, a 1 MiB static file, at 16 connections
#   c10k                  GET /health over 10 000 concurrent keep-alive connections
#   two                   GET /health at 256 connections with two workers/threads/event
#                         loops per proxy on both cores, wrk (two threads) unpinned: the
#                         load generator and the upstream compete for the same cores
#   shed                  Fluxgate only: a global bucket of 1/s rejects every request
#                         (503 with headers and JSON body) — against Fluxgate proxying
# Then peak RSS of each proxy and memory per idle keep-alive connection
# (bench/idle_conns.py, IDLE connections, measured first on fresh processes).
#
# Installs nginx-light, haproxy and wrk with apt-get when missing (needs root);
# builds Fluxgate in release mode. Env: DUR seconds per run (8), ROUNDS (3),
# ROWS ("health64 health256 echo mib c10k shed two"), IDLE (10000), and FLUXGATE_B: the
# path of another fluxgate binary (e.g. a copy of the previous build) to run as a
# fourth target, "fluxgate-b", with the same config — how a change is A/B-measured;
# FLUXGATE_YAML / FLUXGATE_B_YAML: YAML lines added to fluxgate's / fluxgate-b's
# config (e.g. an access_log section). IDLE=0 skips the idle-connection memory step.
# IDLE_SETTLE (10 s): how long the connections are held idle before each reading — past
# Fluxgate's `timeouts.park_after` (5 s), so its figure is that of parked connections
# (FLUXGATE_YAML='timeouts: { park_after: 0s }' measures them unparked).
# WRK_RAW: a file each wrk run's whole output is appended to (its latency distribution).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-8}; ROUNDS=${ROUNDS:-3}; IDLE=${IDLE:-10000}; export IDLE_SETTLE=${IDLE_SETTLE:-10}
ROWS=${ROWS:-"health64 health256 echo mib c10k shed two"}

missing=()
for tool in nginx:nginx-light haproxy:haproxy wrk:wrk python3:python3 taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bench_setup compare
# 10 000 clients need the descriptors bench_setup raised (65 536 where the system allows).
bench_echo_payload
head -c 1048576 /dev/urandom >"$W/mib"
chmod 644 "$W/mib"  # nginx workers run as an unprivileged user

# Upstreams: one nginx worker answering all three ports.
bench_nginx_upstream_conf 19601 19602 19603
# nginx as the proxy: the usual keep-alive set-up to the upstreams.
cat >"$W/nginx.conf" <<C
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;

events { worker_connections 32768; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:19601; server 127.0.0.1:19602; server 127.0.0.1:19603; keepalive 512; }
  server { listen 127.0.0.1:18601 backlog=16384;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      client_max_body_size 1m; } } }
C
# HAProxy reserves two descriptors per connection and refuses to start beyond the
# descriptor limit, so its maxconn is what the limit allows (9 900 at 20 000).
cat >"$W/haproxy.cfg" <<C
global
  nbthread 1
  maxconn $(( ($(ulimit -n) - 200) / 2 ))
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:18602
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:19601
  server s2 127.0.0.1:19602
  server s3 127.0.0.1:19603
C
# Fluxgate: one event loop, limits that never shed (C = 3 × 30 000, S = 60 300).
fluxgate_config() {  # $1 port, $2 global bucket, $3 more YAML (optional)
  cat <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(( $1 + 2000 ))"
workers: 1
upstreams:
  - { name: up-1, url: "http://127.0.0.1:19601", max_concurrency: 30000 }
  - { name: up-2, url: "http://127.0.0.1:19602", max_concurrency: 30000 }
  - { name: up-3, url: "http://127.0.0.1:19603", max_concurrency: 30000 }
rate_limit: { global: $2, per_client: { enabled: false } }
pool: { max_idle_per_upstream: 512 }
demo: { enabled: false }
$BENCH_FLUXGATE_LIMITS
${3:-}
C
}
fluxgate_config 18603 "{ enabled: false }" "${FLUXGATE_YAML:-}" >"$W/fluxgate.yaml"
fluxgate_config 18607 "{ enabled: false }" "${FLUXGATE_B_YAML:-}" >"$W/fluxgate-b.yaml"
fluxgate_config 18604 "$BENCH_SHED_ALL" >"$W/shed.yaml"

taskset -c 0 nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
taskset -c 1 nginx -c "$W/nginx.conf" -e "$W/nginx.err" & pids+=($!); nginx_pid=$!
taskset -c 1 haproxy -f "$W/haproxy.cfg" -q & pids+=($!); haproxy_pid=$!
taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
taskset -c 1 "$BIN" --config "$W/shed.yaml" >"$W/shed.log" 2>&1 & pids+=($!); shed_pid=$!
ports=(nginx:18601 haproxy:18602 fluxgate:18603)
if [ -n "${FLUXGATE_B:-}" ]; then
  taskset -c 1 "$FLUXGATE_B" --config "$W/fluxgate-b.yaml" >"$W/fluxgate-b.log" 2>&1 & pids+=($!); fluxgate_b_pid=$!
  ports+=(fluxgate-b:18607)
fi
for target in upstream:19601 "${ports[@]}"; do bench_wait "${target%%:*}" "${target#*:}"; done
# Every target must answer each row's request alike before anything is timed.
for target in "${ports[@]}"; do
  port=${target#*:}
  curl -s -X POST -H 'Content-Type: application/json' --data-binary @"$W/echo.json" "http://127.0.0.1:$port/api/echo" >"$W/echo.out"
  cmp -s "$W/echo.out" "$W/echo.json" || { echo "${target%%:*}: POST /api/echo answered differently: $(head -c 300 "$W/echo.out")" >&2; exit 1; }
  curl -s "http://127.0.0.1:$port/mib" | cmp -s - "$W/mib" || { echo "${target%%:*}: /mib differs" >&2; exit 1; }
done

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r); nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | awk 'NR==1{print $3}'), wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}')"
echo "# DUR=${DUR}s ROUNDS=$ROUNDS; proxies on CPU 1, upstream + wrk on CPU 0"

[ "$IDLE" -gt 0 ] && echo && echo "== memory per idle keep-alive connection ($IDLE connections, fresh processes, read after ${IDLE_SETTLE} s idle)"
for target in "${ports[@]}"; do
  [ "$IDLE" -gt 0 ] || break
  name=${target%%:*}; port=${target#*:}; pid_var=${name//-/_}_pid
  for _ in $(seq 20); do curl -s -o /dev/null "http://127.0.0.1:$port/health"; done
  printf "%-9s %s\n" "$name" "$(python3 bench/idle_conns.py "$port" "$IDLE" "${!pid_var}")"
done
sleep 2  # the held connections are closed; let the proxies reap them

# wrk in one run; prints "rps p50_ms p99_ms errors".
measure() {  # $1 port, $2 connections, $3 path, rest: wrk options
  local port=$1 conns=$2 path=$3; shift 3
  local run=(taskset -c 0 wrk -t1)
  if [ -n "${TWO:-}" ]; then
    # The two-worker row: the same labels, the two-worker processes, wrk with two threads unpinned.
    case $port in 18601) port=18611 ;; 18602) port=18612 ;; 18603) port=18613 ;; 18607) port=18614 ;; esac
    run=(wrk -t2)
  fi
  "${run[@]}" -c"$conns" -d"${DUR}s" --timeout 10s --latency "$@" "http://127.0.0.1:$port$path" 2>&1 \
    | if [ -n "${WRK_RAW:-}" ]; then tee -a "$WRK_RAW"; else cat; fi | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 } /Non-2xx/ { non2xx += $5 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, err + non2xx }'
}

declare -A sum p50s p99s errs
row() {  # $1 label, $2 connections, $3 path, rest: wrk options; fills the arrays per target
  local label=$1 conns=$2 path=$3; shift 3
  for target in "${ports[@]}"; do sum[$target]=0; p50s[$target]=""; p99s[$target]=""; errs[$target]=0; done
  local count=${#ports[@]} slot target
  for round in $(seq "$ROUNDS"); do
    for slot in $(seq 0 $((count - 1))); do
      target=${ports[$(( (slot + round - 1) % count ))]}
      if [ -n "${WRK_RAW:-}" ]; then echo "### $label ${target%%:*} round $round" >> "$WRK_RAW"; fi
      read -r rps p50 p99 err <<<"$(measure "${target#*:}" "$conns" "$path" "$@")"
      printf "  %-9s %-9s round %s: %8s rps  p50 %7s ms  p99 %7s ms  errors %s\n" "$label" "${target%%:*}" "$round" "$rps" "$p50" "$p99" "$err" >&2
      sum[$target]=$((sum[$target] + rps)); p50s[$target]+="$p50 "; p99s[$target]+="$p99 "; errs[$target]=$((errs[$target] + err))
    done
  done
  local base=${sum[nginx:18601]} haproxy_sum=${sum[haproxy:18602]}
  for target in "${ports[@]}"; do
    python3 - "$label" "${target%%:*}" "${sum[$target]}" "$ROUNDS" "${p50s[$target]}" "${p99s[$target]}" "${errs[$target]}" "$base" "$haproxy_sum" <<'PY'
import statistics, sys
label, name, total, rounds, p50s, p99s, errors, nginx_total, haproxy_total = sys.argv[1:]
median = lambda text: statistics.median(float(v) for v in text.split())
ratio = lambda other: f"{int(total) / int(other):.2f}x" if int(other) else "-"
print(f"{label:9} {name:9} {int(total) / int(rounds):9.0f} {median(p50s):8.2f} {median(p99s):8.2f} {ratio(nginx_total):>9} {ratio(haproxy_total):>10} {errors:>7}")
PY
  done
}

echo
echo "== throughput (requests/s = mean of $ROUNDS rounds; p50/p99 = median of rounds; ratios from the summed requests)"
printf "%-9s %-9s %9s %8s %8s %9s %10s %7s\n" row target "req/s" "p50 ms" "p99 ms" "vs nginx" "vs haproxy" errors
for r in $ROWS; do
  case $r in
    health64) row health64 64 /health ;;
    health256) row health256 256 /health ;;
    echo) row echo 64 /api/echo -s "$W/echo.lua" ;;
    mib) row mib 16 /mib ;;
    c10k) row c10k 10000 /health ;;
    two)
      # Two workers / threads / event loops each, on both cores, against the same
      # upstream; wrk (two threads) and the upstream compete with the proxies for the
      # two cores, so this row measures the whole machine, not a proxy alone.
      sed -e 's/worker_processes 1;/worker_processes 2;/' -e 's/18601/18611/' -e "s|$W/nginx.pid|$W/nginx2.pid|" "$W/nginx.conf" >"$W/nginx2.conf"
      sed -e 's/nbthread 1/nbthread 2/' -e 's/18602/18612/' "$W/haproxy.cfg" >"$W/haproxy2.cfg"
      fluxgate_config 18613 "{ enabled: false }" | sed 's/^workers: 1/workers: 2/' >"$W/fluxgate2.yaml"
      nginx -c "$W/nginx2.conf" -e "$W/nginx2.err" & pids+=($!)
      haproxy -f "$W/haproxy2.cfg" -q & pids+=($!)
      "$BIN" --config "$W/fluxgate2.yaml" >"$W/fluxgate2.log" 2>&1 & pids+=($!)
      two_ports=(nginx:18611 haproxy:18612 fluxgate:18613)
      saved_ports=("${ports[@]}"); ports=(nginx:18601 haproxy:18602 fluxgate:18603)
      if [ -n "${FLUXGATE_B:-}" ]; then
        fluxgate_config 18614 "{ enabled: false }" "${FLUXGATE_B_YAML:-}" | sed 's/^workers: 1/workers: 2/' >"$W/fluxgate-b2.yaml"
        "$FLUXGATE_B" --config "$W/fluxgate-b2.yaml" >"$W/fluxgate-b2.log" 2>&1 & pids+=($!)
        two_ports+=(fluxgate-b:18614); ports+=(fluxgate-b:18607)
      fi
      for target in "${two_ports[@]}"; do bench_wait "${target%%:*}" "${target#*:}"; done
      TWO=1 row two-256 256 /health
      ports=("${saved_ports[@]}") ;;
    shed)
      # wrk's one thread tops out near the shed path's rate, so requests per CPU-second
      # of the gateway process is the comparison; raw requests/s are printed too, and the
      # user and kernel µs per request of each path (the kernel part bounds the ratio).
      ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
      for round in $(seq "$ROUNDS"); do
        read -r su0 ss0 <<<"$(ticks "$shed_pid")"; read -r shed_rps _ shed_p99 _ <<<"$(measure 18604 64 /health)"; read -r su1 ss1 <<<"$(ticks "$shed_pid")"
        read -r pu0 ps0 <<<"$(ticks "$fluxgate_pid")"; read -r proxy_rps _ proxy_p99 _ <<<"$(measure 18603 64 /health)"; read -r pu1 ps1 <<<"$(ticks "$fluxgate_pid")"
        python3 - "$round" "$DUR" "$(getconf CLK_TCK)" "$shed_rps" "$shed_p99" $((su1 - su0)) $((ss1 - ss0)) "$proxy_rps" "$proxy_p99" $((pu1 - pu0)) $((ps1 - ps0)) <<'PY'
import sys
rnd, dur, hz, s_rps, s_p99, s_user, s_sys, p_rps, p_p99, p_user, p_sys = sys.argv[1:]
dur, hz = float(dur), int(hz)
per_cpu = lambda rps, ticks: float(rps) * dur / (ticks / hz) if ticks else float("nan")
us = lambda ticks, rps: ticks / hz * 1e6 / (float(rps) * dur) if float(rps) else float("nan")
s_ticks, p_ticks = int(s_user) + int(s_sys), int(p_user) + int(p_sys)
s_cpu, p_cpu = per_cpu(s_rps, s_ticks), per_cpu(p_rps, p_ticks)
print(f"shed      round {rnd}: shed {float(s_rps):.0f} rps at {s_ticks / hz / dur * 100:.0f} % CPU = {s_cpu:.0f} per CPU-s (p99 {s_p99} ms); "
      f"proxied {float(p_rps):.0f} rps at {p_ticks / hz / dur * 100:.0f} % CPU = {p_cpu:.0f} per CPU-s (p99 {p_p99} ms); "
      f"per CPU-s {s_cpu / p_cpu:.2f}x, raw {float(s_rps) / float(p_rps):.2f}x; "
      f"µs/request user+sys: shed {us(int(s_user), s_rps):.2f}+{us(int(s_sys), s_rps):.2f}, proxied {us(int(p_user), p_rps):.2f}+{us(int(p_sys), p_rps):.2f}")
PY
      done ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
  esac
done

echo
echo "== peak resident memory over the whole run (VmHWM; nginx: master + worker)"
peak() { local total=0; for p in "$@"; do
  for pid in $p $(pgrep -P "$p" || true); do total=$((total + $(awk '/VmHWM/{print $2}' "/proc/$pid/status"))); done; done; echo "$total"; }
printf "%-9s %8s KiB\n" nginx "$(peak "$nginx_pid")" haproxy "$(peak "$haproxy_pid")" fluxgate "$(peak "$fluxgate_pid")"
