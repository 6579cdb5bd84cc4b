#!/usr/bin/env bash
# Mutual TLS on the listener, by hand with curl and openssl against the release build:
# a CA signs a client certificate (CN=client-a, a SPIFFE URI and a DNS name); a self-signed "stranger";
# the upstream is a Python server that answers with the X-Forwarded-Client-Cert it received.
set -u
BIN=${BIN:-/work/main/.build/release/fluxgate}; D=/tmp/mt; mkdir -p $D; cd $D; rm -f *.pem *.srl gw.log
q() { openssl "$@" 2>/dev/null; }
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server-key.pem -out server.pem -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.pem -days 30 -subj "/CN=Example Client CA/O=Example"
q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client-key.pem -out client.csr -subj "/CN=client-a/O=Example, Inc."
printf "subjectAltName=URI:spiffe://example.org/ns/default/sa/web,DNS:client-a.example.org\n" > ext.cnf
q x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client.pem -days 30 -extfile ext.cnf
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger-key.pem -out stranger.pem -days 30 -subj /CN=stranger
cat > echo.py <<'PY'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("x-forwarded-client-cert: %s\n" % self.headers.get_all("x-forwarded-client-cert")).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 19582), H).serve_forever()
PY
python3 echo.py & E=$!
cat > gw.yaml <<YAML
listen: "127.0.0.1:18443"
admin_listen: "127.0.0.1:19443"
upstreams: [{url: "http://127.0.0.1:19582"}]
health_check: { path: /, interval: 1s }
tls: { certificate: server.pem, key: server-key.pem, verify_client: on, client_ca_file: ca.pem }
YAML
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD))"
echo "== gw.yaml"; cat gw.yaml
echo "== check-config with verify_client on and no client_ca_file, and with client_ca_file but verify_client off"
sed 's/, client_ca_file: ca.pem//' gw.yaml > no-ca.yaml; $BIN check-config --config no-ca.yaml 2>&1 | head -3
sed 's/verify_client: on, //' gw.yaml > no-verify.yaml; $BIN check-config --config no-verify.yaml 2>&1 | head -3
echo "== check-config with a client_ca_file that holds no certificate"
echo "not a certificate" > junk.pem; sed 's/client_ca_file: ca.pem/client_ca_file: junk.pem/' gw.yaml > junk.yaml; $BIN check-config --config junk.yaml 2>&1 | head -3
$BIN --config gw.yaml > gw.log 2>&1 & G=$!
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19443/readyz)" = 200 ] && break; sleep 0.1; done
C="curl -sS --cacert server.pem https://localhost:18443/"
echo "== with the client certificate"; $C --cert client.pem --key client-key.pem; echo
echo "== with it, and a forged X-Forwarded-Client-Cert"; $C --cert client.pem --key client-key.pem -H 'X-Forwarded-Client-Cert: Hash=0;Subject="CN=admin"'; echo
echo "== the certificate's SHA-256, for comparison"; openssl x509 -in client.pem -outform der | sha256sum | cut -d' ' -f1
echo "== without a certificate"; $C -i; echo
echo "== with a certificate no CA in ca.pem signed"; $C --cert stranger.pem --key stranger-key.pem; echo "curl exit $?"
echo "== the CA names the gateway sends (openssl s_client)"; echo | openssl s_client -connect 127.0.0.1:18443 -servername localhost -CAfile server.pem 2>/dev/null | sed -n '/Acceptable client certificate CA names/,+1p'
echo "== reloaded with verify_client: optional"; sed -i 's/verify_client: on/verify_client: optional/' gw.yaml; $BIN reload --admin 127.0.0.1:19443 | head -3
echo "-- without a certificate, a forged field sent:"; $C -H 'X-Forwarded-Client-Cert: Hash=0;Subject="CN=admin"'; echo
echo "-- with the client certificate:"; $C --cert client.pem --key client-key.pem; echo
echo "-- with the stranger's:"; $C --cert stranger.pem --key stranger-key.pem; echo "curl exit $?"
echo "== the gateway's log"; cat gw.log
kill -TERM $G; wait $G; echo "gateway exit $?"; kill $E; wait 2>/dev/null
