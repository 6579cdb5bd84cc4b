#!/usr/bin/env bash
# What the access log costs (a measurement, not a test): requests/s and CPU per request
# of each proxy with its access log off and on, writing to a file. nginx (one worker,
# keep-alive 512 to the upstream; `access_log` with its default combined format, no
# buffer: one write per request) and Fluxgate (`workers: 1`; JSON lines, flush_interval
# 1s — the default — and 0s, every line at once), all on CPU 1 (a proxy's log writer
# shares its core); one nginx upstream and `wrk -t1 -c64 GET /health` on CPU 0; ROUNDS
# rounds of DUR seconds, targets alternating. FLUXGATE_BEFORE=<binary> adds that build
# with its log on (an A/B against an earlier build).
# Needs nginx-light and wrk (apt). Env: DUR (5), ROUNDS (2), CONNS (64).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-2}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19781 18781 18782 18783 18784 18785 18786 20783 20784 20785 20786
bench_setup accesslog
bench_nginx_health_upstream 19781 0
for variant in off:18781:off on:18782:"$W/nginx-18782.log"; do
  IFS=: read -r name port log <<<"$variant"
  cat >"$W/nginx-$name.conf" <<C
worker_processes 1; daemon off; pid $W/nginx-$name.pid; error_log $W/nginx-$name.err;
events { worker_connections 4096; }
http { access_log $log; keepalive_requests 1000000;
  upstream u { server 127.0.0.1:19781; keepalive 512; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
  taskset -c 1 nginx -c "$W/nginx-$name.conf" -e "$W/nginx-$name.err" & pids+=($!)
done
log_yaml() { echo "access_log: { enabled: true, format: json, path: \"$W/fluxgate-$1.log\", flush_interval: $2 }"; }
bench_fluxgate_config 18783 19781 >"$W/fg-off.yaml"
bench_fluxgate_config 18784 19781 "" "$(log_yaml 18784 1s)" >"$W/fg-on.yaml"
bench_fluxgate_config 18785 19781 "" "$(log_yaml 18785 0s)" >"$W/fg-on0.yaml"
targets=()
for variant in off:18783 on:18784 on0:18785; do
  IFS=: read -r name port <<<"$variant"
  taskset -c 1 "$BIN" --config "$W/fg-$name.yaml" >"$W/fg-$name.out" 2>&1 & pids+=($!)
  eval "fg_${name}_pid=$!"
done
if [ -n "${FLUXGATE_BEFORE:-}" ]; then
  # An earlier build: its access_log has no flush_interval key.
  bench_fluxgate_config 18786 19781 "" "access_log: { enabled: true, format: json, path: \"$W/fluxgate-18786.log\" }" >"$W/fg-before.yaml"
  taskset -c 1 "$FLUXGATE_BEFORE" --config "$W/fg-before.yaml" >"$W/fg-before.out" 2>&1 & pids+=($!); fg_before_pid=$!
fi
bench_wait upstream 19781
for port in 18781 18782 18783 18784 18785; do bench_wait proxy "$port"; done
[ -n "${FLUXGATE_BEFORE:-}" ] && bench_wait before 18786
worker() { pgrep -P "$(cat "$W/nginx-$1.pid")" | head -1; }
targets=(nginx-off:18781:$(worker off) nginx-on:18782:$(worker on) fg-off:18783:$fg_off_pid fg-on-1s:18784:$fg_on_pid fg-on-0s:18785:$fg_on0_pid)
[ -n "${FLUXGATE_BEFORE:-}" ] && targets+=(fg-before:18786:$fg_before_pid)
echo "# $(date -u +%FT%TZ) $(nproc) cores; wrk -t1 -c${CONNS:-64} -d${DUR}s GET /health; CPU per request of the proxy process (all its threads)"
for round in $(seq "$ROUNDS"); do
  for target in "${targets[@]}"; do
    IFS=: read -r name port pid <<<"$target"
    bench_cpu_round "$round" "$name" "$port" "$pid" "$DUR"
  done
done
sleep 1.5  # the 1 s flush interval: every line is out
echo "# lines written: nginx $(wc -l <"$W/nginx-18782.log"), fluxgate 1s $(wc -l <"$W/fluxgate-18784.log"), 0s $(wc -l <"$W/fluxgate-18785.log")$([ -n "${FLUXGATE_BEFORE:-}" ] && echo ", before $(wc -l <"$W/fluxgate-18786.log")")"
echo "# a Fluxgate line: $(tail -1 "$W/fluxgate-18784.log")"
