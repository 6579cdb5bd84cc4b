#!/usr/bin/env bash
# By hand, release build: (1) the access log's client_cert with a client certificate
# (openssl-made CA, server and client certificates; curl presents the client's), with
# none (verify_client: optional), and on a refused request; (2) the pool's
# fluxgate_upstream_connections_retired_total after 50 requests with
# pool.max_requests_per_connection: 10 (one keep-alive client).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${FLUXGATE_BIN:-$PWD/.build/release/fluxgate}
W=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Test CA" 2>/dev/null
mk() {  # NAME SUBJECT SAN
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf "subjectAltName=%s\n" "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
mk server "/CN=localhost" "DNS:localhost"
mk client "/O=Example Org/CN=client-a" "DNS:client-a.example"
"$BIN" demo-upstream --port 19631 --instance a --workers 1 >up.log 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19631/health && break; sleep 0.1; done
cat >gw.yaml <<YAML
listen: "127.0.0.1:18631"
admin_listen: "127.0.0.1:19730"
workers: 1
upstreams: [ { name: a, url: "http://127.0.0.1:19631" } ]
tls: { certificate: server.pem, key: server.key, verify_client: optional, client_ca_file: ca.pem }
access_log: { enabled: true, path: access.log, flush_interval: 0s }
pool: { max_requests_per_connection: 10 }
YAML
"$BIN" --config gw.yaml >gw.log 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19730/readyz && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN"
echo "--- with the client certificate; without one; a refused request (bad Host) with it"
curl -s --cacert ca.pem --cert client.pem --key client.key -o /dev/null -w "%{http_code}\n" https://localhost:18631/api/status
curl -s --cacert ca.pem -o /dev/null -w "%{http_code}\n" https://localhost:18631/api/status
curl -s --cacert ca.pem --cert client.pem --key client.key -H "Host: a..b" -o /dev/null -w "%{http_code}\n" https://localhost:18631/api/status
echo "--- 50 requests on one keep-alive connection"
curl -s --cacert ca.pem $(for i in $(seq 50); do printf -- "-o /dev/null https://localhost:18631/api/status?n=%d " "$i"; done) -w "%{num_connects}" | sort | uniq -c
sleep 0.5
curl -s http://127.0.0.1:19730/metrics | grep -E "^fluxgate_upstream_connections_retired_total"
curl -s http://127.0.0.1:19730/stats | grep -E '"upstream_retired'
kill -TERM $gw; wait $gw || true
echo "--- access.log (first three lines, then the count)"
head -3 access.log
wc -l <access.log
