#!/usr/bin/env bash
# What a shed costs against a proxied request, in nginx and in Fluxgate (a measurement,
# not a test): issue 14 asks Fluxgate's shed path for 3x the proxied path's requests per
# CPU-second, and compare.sh's shed row measures Fluxgate alone. Here both proxies are
# measured the same way, so the target can be read against what nginx's own shed costs.
#
# One nginx upstream (GET /health, CPU 0); on CPU 1 four proxies, one worker / event
# loop each: nginx proxying, nginx shedding every request (`limit_req` at 1 r/s,
# burst 1, nodelay: its 503 page, keep-alive), Fluxgate proxying, Fluxgate shedding
# every request (a global bucket of 1/s: its 503, keep-alive — compare.sh's shed row).
# `wrk -t1 -c64` (CPU 0) for DUR seconds against each in turn, ROUNDS times; the CPU per
# request of each proxy process from /proc/PID/stat (bench_cpu_round), then per proxy
# the ratio of its proxied to its shed CPU per request (= sheds per CPU-second over
# proxied requests per CPU-second). Needs nginx-light and wrk (apt).
# Env: DUR (5), ROUNDS (3).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-5}; ROUNDS=${ROUNDS:-3}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_ports_free 19771 18771 18775 18772 20772 18776 20776
bench_setup shedcost
bench_nginx_health_upstream 19771 0
bench_nginx_proxy 18771 19771
proxy_worker=$nginx_worker
NGINX_PROXY_NAME=shed NGINX_PROXY_HTTP='limit_req_zone $binary_remote_addr zone=all:1m rate=1r/s;' \
  NGINX_PROXY_LOCATION='limit_req zone=all burst=1 nodelay; limit_req_log_level info; ' bench_nginx_proxy 18775 19771
shed_worker=$nginx_worker
bench_fluxgate_config 18772 19771 >"$W/proxy.yaml"
bench_fluxgate_config 18776 19771 "$BENCH_SHED_ALL" >"$W/shed.yaml"
taskset -c 1 "$BIN" --config "$W/proxy.yaml" >"$W/proxy.log" 2>&1 & pids+=($!); fluxgate_pid=$!
taskset -c 1 "$BIN" --config "$W/shed.yaml" >"$W/shed.log" 2>&1 & pids+=($!); fluxgate_shed_pid=$!
bench_wait upstream 19771; bench_wait fluxgate 18772; bench_wait fluxgate-shed 18776
echo "# $(date -u +%FT%TZ) $(nproc) cores; $("$BIN" --version 2>/dev/null | head -1); wrk -t1 -c64 -d${DUR}s GET /health; CPU per request of each proxy process"
echo "# nginx-shed: limit_req 1 r/s burst 1 nodelay; fluxgate-shed: rate_limit.global 1/s burst 1 (both answer 503, keep-alive)"
for round in $(seq "$ROUNDS"); do
  for target in nginx:18771:$proxy_worker nginx-shed:18775:$shed_worker fluxgate:18772:$fluxgate_pid fluxgate-shed:18776:$fluxgate_shed_pid; do
    IFS=: read -r name port pid <<<"$target"
    bench_cpu_round "$round" "$name" "$port" "$pid" "$DUR"
  done
done | tee "$W/rounds.txt"
# Per proxy and round: proxied µs per request over shed µs per request.
awk '{ total[$2 " " $3] = $(NF - 10) }
  END {
    for (key in total) { split(key, k, " "); if (k[2] !~ /-shed$/) continue; base = substr(k[2], 1, length(k[2]) - 5)
      printf "%s round %s: shed %.2f us, proxied %.2f us per request: sheds per CPU-second %.2fx proxied\n", base, k[1], total[key], total[k[1] " " base], total[k[1] " " base] / total[key] } }' "$W/rounds.txt" | sort -k1,1 -k3,3n
