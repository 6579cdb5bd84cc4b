# Shared set-up for the bench/*.sh scripts (sourced, not run).
# -h / --help and unknown arguments: scripts/usage.sh (USAGE_ARGS set before sourcing).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/usage.sh"
# After `bench_setup NAME`: the repository root is the working directory, fluxgate is
# built in release mode (scripts/build-release.sh, README's release build) as $BIN, $W is a scratch folder, and every pid appended to
# `pids` is killed when the script exits.
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[1]}")/.."
  # The release build as docs/PERFORMANCE.md measures it (exclusivity checks off in the
  # dependencies too, profile-guided optimization: scripts/build-release.sh).
  bash scripts/build-release.sh >/dev/null
  BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}  # FLUXGATE_BIN: measure another build
  bench_raise_descriptors
  W=$(mktemp -d -t "$1.XXXX")
  pids=()
  # CONT after TERM: a process a script stopped (SIGSTOP, a hung upstream) takes its
  # TERM only once it runs again, and `wait` would wait for it for ever.
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; kill -CONT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
}

# 65 536 descriptors for this shell and what it starts (the scripts hold up to 10 000
# client connections, and Fluxgate's automatic limits.max_connections is half its
# descriptor limit): the hard limit is raised when it is lower and the system lets us
# (root), and the soft limit follows as far as the hard one goes.
bench_raise_descriptors() {
  local hard
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then ulimit -Hn 65536 2>/dev/null || true; fi
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
}

# The open descriptors and the resident memory (KiB) of process PID.
bench_fds() { ls "/proc/$1/fd" | wc -l; }
bench_rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# Waits up to 30 s for process PID's descriptors to be back at BASE or below (the
# connections a load left closing); sets FDS_OK (1 or 0) and FINAL_FDS.
bench_fds_back() {  # PID BASE
  FDS_OK=0
  for _ in $(seq 30); do
    if (( $(bench_fds "$1") <= $2 )); then FDS_OK=1; break; fi
    sleep 1
  done
  FINAL_FDS=$(bench_fds "$1")
}

# Samples process PID's RSS and descriptors into FILE (t_s, rss_kb, fds; a header
# first) every SECONDS in the background from now (T0); the sampler's pid is in SAMPLER
# (and in pids, so it stops with the script).
bench_sample() {  # PID FILE SECONDS
  local pid=$1 file=$2 every=$3
  printf "t_s\trss_kb\tfds\n" >"$file"
  T0=$(date +%s)
  ( while :; do printf "%s\t%s\t%s\n" "$(( $(date +%s) - T0 ))" "$(bench_rss_kb "$pid")" "$(bench_fds "$pid")" >>"$file"; sleep "$every"; done ) &
  SAMPLER=$!; pids+=("$SAMPLER")
}

# The first lines of a one-event-loop Fluxgate config for the scripts that write their
# own: listening on 127.0.0.1:PORT, admin on PORT + 2000, no file watch, no demo.
bench_gateway_head() {  # PORT
  cat <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(( $1 + 2000 ))"
workers: 1
reload: { watch: false }
demo: { enabled: false }
C
}

# Requires a command, naming the package that brings it.
bench_need() { command -v "$1" >/dev/null || { echo "$1 is missing: $2" >&2; exit 1; }; }

# Writes $W/echo.json (the ~100-item JSON body used for POST /api/echo) and
# $W/echo.lua (a wrk script that POSTs it).
bench_echo_payload() {
  python3 - >"$W/echo.json" <<'PY'
import json
print(json.dumps({"items": [{"id": i, "name": f"item-{i}", "price": i * 1.5, "tags": ["a", "b"]} for i in range(100)]}))
PY
  cat >"$W/echo.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$W/echo.json"); wrk.body = f:read("*a"); f:close()
LUA
  chmod 644 "$W/echo.json"  # nginx workers run as an unprivileged user
  # $W/browser.lua: GET /health with the fields a browser sends (Chrome's navigation
  # set: 14 fields, 12 of them unclassified names, 9 of 13 bytes or more).
  cat >"$W/browser.lua" <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
wrk.headers["Accept-Encoding"] = "gzip, deflate, br, zstd"
wrk.headers["Cache-Control"] = "max-age=0"
wrk.headers["Upgrade-Insecure-Requests"] = "1"
wrk.headers["Sec-Fetch-Dest"] = "document"
wrk.headers["Sec-Fetch-Mode"] = "navigate"
wrk.headers["Sec-Fetch-Site"] = "none"
wrk.headers["Sec-Fetch-User"] = "?1"
wrk.headers["sec-ch-ua"] = "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""
wrk.headers["sec-ch-ua-mobile"] = "?0"
wrk.headers["sec-ch-ua-platform"] = "\"Linux\""
wrk.headers["Cookie"] = "session=5f2b8c1e9a7d4e3f; theme=dark"
LUA
}

# $W/cert.pem and $W/key.pem: a self-signed P-256 certificate for localhost and
# 127.0.0.1, valid for a day (the TLS scripts'; needs openssl).
bench_tls_certificate() {
  bench_need openssl "apt-get install -y openssl"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
}

# A one-event-loop Fluxgate terminating TLS (bench_tls_certificate's) on 127.0.0.1:PORT
# (admin listener on PORT + 2000) in front of the one upstream UPSTREAM_URL, rate limits
# off, no demo; EXTRA appended as YAML lines. On stdout.
bench_tls_gateway_config() {  # PORT UPSTREAM_URL [EXTRA]
  cat <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(( $1 + 2000 ))"
workers: 1
demo: { enabled: false }
upstreams: [ { url: "$2" } ]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
tls: { certificate: "$W/cert.pem", key: "$W/key.pem" }
${3:-}
C
}

# Waits up to 5 s for http://127.0.0.1:PORT$PATH (default /health) to answer 2xx;
# exits the script naming NAME if it never does.
bench_wait() {  # NAME PORT [PATH]
  local path=${3:-/health}
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$2$path" && return; sleep 0.1; done
  echo "$1 (port $2) is not answering" >&2; exit 1
}

# Exits the script when one of the given loopback ports is already listening (a
# second run, or another benchmark): its answers would be mistaken for ours.
bench_ports_free() {  # PORT...
  for port in "$@"; do
    if ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q .; then
      echo "port $port is already in use on this machine; set the script's *_PORT variables" >&2; exit 1
    fi
  done
}

# A one-event-loop Fluxgate configuration for the per-request measurements, on stdout:
# listening on 127.0.0.1:PORT (admin listener on PORT + 2000), one upstream at
# 127.0.0.1:UPSTREAM_PORT with a concurrency limit nothing reaches, the global bucket as
# GLOBAL (default off), per-client limits off, no demo, at most 18 000 client
# connections; EXTRA appended as YAML lines.
# The global rate limit that sheds every request after the first (503, keep-alive):
# the shed path of compare.sh, malloc-count.sh, shed-cost.sh and the SHED=1 options.
BENCH_SHED_ALL='{ enabled: true, rate: 1, burst: 1 }'

# Fluxgate's limits beside nginx (`keepalive_requests 1000000`) and HAProxy (no bound):
# no request bound per client connection, so no side closes keep-alive connections
# mid-run, and room for the 10 000 clients some scripts hold (the automatic cap is half
# this machine's hard descriptor limit of 20 000). One line for every side-by-side set-up.
BENCH_FLUXGATE_LIMITS='limits: { max_connections: 18000, max_requests_per_connection: 0 }'

bench_fluxgate_config() {  # PORT UPSTREAM_PORT [GLOBAL] [EXTRA]
  local global=${3:-} limits=$BENCH_FLUXGATE_LIMITS
  [ -n "$global" ] || global='{ enabled: false }'
  [[ "${4:-}" == *limits:* ]] && limits=''  # EXTRA sets its own
  cat <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(( $1 + 2000 ))"
workers: 1
upstreams: [{ url: "http://127.0.0.1:$2", max_concurrency: 90000 }]
rate_limit: { global: $global, per_client: { enabled: false } }
demo: { enabled: false }
$limits
${4:-}
C
}

# One measured run of the CPU-per-request scripts: warms the keep-alive pools, runs
# `wrk -t1 -cCONNS` (CONNS: 64 unless set) on CPU 0 for DUR seconds against PORT, and
# prints the requests, their rate, the user, system and total CPU per request of
# process PID (its /proc/PID/stat ticks over the run) and how idle each CPU was (when
# CPU 0 — wrk and the upstream — has no idle time, it is the bottleneck, not the proxy).
# REQUEST=echo POSTs the 6.6 KB JSON body to /api/echo (bench_echo_payload first, and
# an upstream from bench_nginx_health_upstream, which then serves it); REQUEST=browser
# sends GET /health with a browser's header fields (browser.lua, also from
# bench_echo_payload); else a bare GET /health.
bench_cpu_round() {  # ROUND NAME PORT PID DUR
  local u0 s0 u1 s1 requests idle0 idle1 path=/health wrk_args=()
  if [ "${REQUEST:-health}" = echo ]; then path=/api/echo; wrk_args=(-s "$W/echo.lua"); fi
  if [ "${REQUEST:-health}" = browser ]; then wrk_args=(-s "$W/browser.lua"); fi
  local run=(taskset -c 0 wrk -t1)
  # WORKERS > 1 (user-time-ab.sh): the proxies run unpinned on every core, and so does wrk.
  [ "${WORKERS:-1}" -gt 1 ] && run=(wrk -t"$WORKERS")
  "${run[@]}" -c"${CONNS:-64}" -d1s "${wrk_args[@]}" "http://127.0.0.1:$3$path" >/dev/null
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$4/stat")
  read -r idle0 idle1 < <(awk '/^cpu0 /{a=$5} /^cpu1 /{b=$5} END{print a, b}' /proc/stat)
  requests=$("${run[@]}" -c"${CONNS:-64}" -d"$5s" "${wrk_args[@]}" "http://127.0.0.1:$3$path" | awk '/requests in/{print $1}' | tr -d ,)
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$4/stat")
  read -r idle0 idle1 < <(awk -v a="$idle0" -v b="$idle1" '/^cpu0 /{x=$5-a} /^cpu1 /{y=$5-b} END{print x, y}' /proc/stat)
  python3 - "$1" "$2" "$requests" $((u1 - u0)) $((s1 - s0)) "$(getconf CLK_TCK)" "$5" "$idle0" "$idle1" <<'PY'
import sys
rnd, name, r, u, s, hz, dur = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
idle0, idle1 = (int(x) * 100 / hz / dur for x in sys.argv[8:10])
us = lambda ticks: ticks * 1e6 / hz / r
print(f"round {rnd} {name:9} {r:8} requests ({r / dur:8.0f}/s)  user {us(u):5.2f} us  system {us(s):5.2f} us  total {us(u + s):5.2f} us per request  idle cpu0 {idle0:3.0f} % cpu1 {idle1:3.0f} %")
PY
}

# $W/upstream.conf: one nginx worker on 127.0.0.1 at each PORT, answering GET /health
# with a 37-byte JSON, POST /api/echo with $W/echo.json (bench_echo_payload) and GET
# /mib with $W/mib (the upstream of bench/compare.sh and of the per-request
# measurements; a file not written answers 404).
bench_nginx_upstream_conf() {  # PORT...
  chmod 755 "$W"
  local listen=""
  for port in "$@"; do listen+="listen 127.0.0.1:$port; "; done
  cat >"$W/upstream.conf" <<C
worker_processes 1; daemon off; pid $W/upstream.pid; error_log $W/upstream.err;
events { worker_connections 32768; }
http { access_log off; keepalive_requests 1000000;
  server { $listen
    location = /health { default_type application/json; return 200 '{"status":"UP","service":"upstream"}'; }
    location = /api/echo { client_max_body_size 1m; client_body_buffer_size 64k;
      default_type application/json; alias $W/echo.json; error_page 405 =200 \$uri; }
    location = /mib { default_type application/octet-stream; alias $W/mib; } } }
C
}

# That upstream on 127.0.0.1:PORT, started on CPU (taskset).
bench_nginx_health_upstream() {  # PORT CPU
  bench_nginx_upstream_conf "$1"
  taskset -c "$2" nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
}

# nginx as the proxy beside Fluxgate in the per-request measurements: one worker on
# CPU 1 at 127.0.0.1:PORT in front of 127.0.0.1:UPSTREAM_PORT, keep-alive 512 to it;
# its worker's pid in $nginx_worker once it answers. Env for a second one beside it
# (bench/shed-cost.sh): NGINX_PROXY_NAME (its conf/pid/log names, default proxy),
# NGINX_PROXY_HTTP and NGINX_PROXY_LOCATION (directives added to http and to location /).
bench_nginx_proxy() {  # PORT UPSTREAM_PORT...
  local port=$1 servers="" upstream name=${NGINX_PROXY_NAME:-proxy}
  shift
  for upstream in "$@"; do servers+="server 127.0.0.1:$upstream; "; done
  cat >"$W/$name.conf" <<C
worker_processes 1; daemon off; pid $W/$name.pid; error_log $W/$name.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; ${NGINX_PROXY_HTTP:-}
  upstream u { ${servers}keepalive 512; }
  server { listen 127.0.0.1:$port;
    location / { ${NGINX_PROXY_LOCATION:-}proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
  taskset -c 1 nginx -c "$W/$name.conf" & pids+=($!)
  bench_wait "nginx ($name)" "$port"
  nginx_worker=$(pgrep -P "$(cat "$W/$name.pid")" | head -1)
}

# compare.sh's small-request set-up without HAProxy, for the diagnostics that look at
# one row of it (conn-fairness.sh, syscall-count.sh): the upstream nginx answering
# 127.0.0.1:19601-19603 on CPU 0; nginx as the proxy on 18601 and Fluxgate on 18603
# (compare.sh's config: one event loop, the three upstreams, nothing that sheds, idle
# cap 512; EXTRA: YAML lines added) on CPU 1. Pids in $nginx_worker and $fluxgate_pid.
bench_small_request_proxies() {
  bench_echo_payload
  head -c 16 /dev/urandom >"$W/mib"  # the upstream's config names it
  bench_nginx_upstream_conf 19601 19602 19603
  taskset -c 0 nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
  bench_wait upstream 19601
  bench_nginx_proxy 18601 19601 19602 19603
  cat >"$W/fluxgate.yaml" <<C
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
# Until 2026-12-06 this set-up kept the default (1000 requests per connection), so in
# request-phases.sh and conn-fairness.sh runs after 2026-12-04 every client connection
# of Fluxgate's was closed and reopened every 1000 requests, nginx's never.
$([[ "${EXTRA:-}" == *limits:* ]] || echo "$BENCH_FLUXGATE_LIMITS")
${EXTRA:-}
C
  taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
  bench_wait fluxgate 18603
}

# The relay floor (Sources/RelayFloor: the cheapest keep-alive relay SwiftNIO allows)
# on CPU 1 at 127.0.0.1:PORT in front of 127.0.0.1:UPSTREAM_PORT; its pid in $relay_pid.
bench_relay_floor() {  # PORT UPSTREAM_PORT
  bash scripts/build-release.sh --product fluxgate-relay-floor >/dev/null
  taskset -c 1 .build/release/fluxgate-relay-floor "$1" "$2" >"$W/relay.log" 2>&1 & pids+=($!); relay_pid=$!
}

# The memory verdict of the soak scripts, one line starting "ok" or "FAIL": the mean RSS
# of the last third of the traffic samples may exceed the second third's by at most
# max(MARGIN_MB, MARGIN_PCT % of it). SAMPLES is a TSV with a header line, time in
# column 1 and RSS (KiB) in column 2; samples after END seconds and those whose column
# PHASE_COLUMN (1-based, optional) says "start" are left out.
bench_rss_verdict() {  # SAMPLES END MARGIN_MB MARGIN_PCT [PHASE_COLUMN]
  python3 - "$@" <<'PY'
import sys
path, end, margin_mb, margin_pct = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
phase = int(sys.argv[5]) - 1 if len(sys.argv) > 5 else None
rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
rss = [int(r[1]) for r in rows if r[1] and int(r[0]) <= end and (phase is None or r[phase] != "start")]
third = len(rss) // 3
second, last = rss[third:2 * third], rss[2 * third:]
m2, m3 = sum(second) / len(second), sum(last) / len(last)
allowed = max(margin_mb * 1024, m2 * margin_pct / 100)
ok = m3 - m2 <= allowed
print(f"{'ok' if ok else 'FAIL'} rss: first sample {rss[0]/1024:.1f} MiB, max {max(rss)/1024:.1f} MiB; "
      f"mean of 2nd third {m2/1024:.1f} MiB, of last third {m3/1024:.1f} MiB "
      f"(growth {(m3-m2)/1024:+.1f} MiB, allowed {allowed/1024:.1f})")
PY
}
