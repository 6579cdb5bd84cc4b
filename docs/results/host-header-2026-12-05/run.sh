#!/usr/bin/env bash
# An upstream that routes by Host (nginx with two server blocks on one port: the
# default one answers 404 "unknown site", `api.internal` answers 200 "api") behind
# Fluxgate with each upstreams[].host_header setting, and behind nginx 1.22.1's
# default proxy_pass (which sends $proxy_host). The client asks for gw.example.
# Prints what each client got and the Host and X-Forwarded-Host the upstream saw.
#
#   bash docs/results/host-header-2026-12-05/run.sh     # needs nginx-light, curl; release build
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}
W=$(mktemp -d -t host-header.XXXX)
# The name the upstream serves resolves here (nginx's proxy_pass needs it at start);
# /etc/hosts is restored on exit, after nginx is stopped by its pid.
cp /etc/hosts "$W/hosts.orig"
trap 'kill "$(cat "$W/nginx.pid" 2>/dev/null)" 2>/dev/null || true; cat "$W/hosts.orig" > /etc/hosts' EXIT
grep -q " api.internal$" /etc/hosts || echo "127.0.0.1 api.internal" >> /etc/hosts
mkdir -p "$W/logs"
cat >"$W/nginx.conf" <<NGINX
worker_processes 1; daemon on; pid $W/nginx.pid; error_log $W/logs/error.log;
events {}
http {
  access_log off;
  log_format h '\$http_host|\$http_x_forwarded_host';
  server { listen 127.0.0.1:19701 default_server; access_log $W/logs/upstream.log h;
           location / { return 404 "unknown site\n"; } }
  server { listen 127.0.0.1:19701; server_name api.internal; access_log $W/logs/upstream.log h;
           location / { return 200 "api\n"; } }
  server { listen 127.0.0.1:19702; location / { proxy_pass http://api.internal:19701; } }
}
NGINX
nginx -p "$W" -c "$W/nginx.conf"
run() {  # LABEL HOST_HEADER
  cat >"$W/gw.yaml" <<YAML
listen: "127.0.0.1:19711"
admin_listen: "127.0.0.1:19712"
health_check: { path: /, expected_statuses: [200-499] }
upstreams:
  - { name: app, url: "http://api.internal:19701"$2 }
YAML
  "$BIN" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & local gw=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:19712/healthz" && break; sleep 0.1; done
  : >"$W/logs/upstream.log"
  local got; got=$(curl -s -w ' (%{http_code})' -H 'Host: gw.example' http://127.0.0.1:19711/ | tr -d '\n')
  sleep 0.2  # nginx writes its access log line after the answer
  printf '%-44s client got: %-18s upstream saw Host|X-Forwarded-Host: %s\n' "$1" "$got" "$(tail -1 "$W/logs/upstream.log")"
  kill "$gw"; wait "$gw" 2>/dev/null || true
}
echo "# $(date -u +%FT%TZ) $("$BIN" --version 2>/dev/null || echo fluxgate) beside $(nginx -v 2>&1)"
run "fluxgate, host_header: client (default)" ""
run "fluxgate, host_header: upstream" ", host_header: upstream"
run "fluxgate, host_header: api.internal" ", host_header: api.internal"
: >"$W/logs/upstream.log"
got=$(curl -s -w ' (%{http_code})' -H 'Host: gw.example' http://127.0.0.1:19702/ | tr -d '\n'); sleep 0.2
printf '%-44s client got: %-18s upstream saw Host|X-Forwarded-Host: %s\n' "nginx, proxy_pass default" "$got" "$(tail -1 "$W/logs/upstream.log")"
