#!/usr/bin/env bash
# By hand: a client certificate for an https:// upstream that asks for one (mutual TLS),
# nginx 1.22.1 as that upstream (ssl_verify_client on). BIN = the release build.
set -u
BIN=${BIN:?}; W=/tmp/mt/w; rm -rf $W; mkdir -p $W; cd $W
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD)); $(nginx -v 2>&1)"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
ec server localhost; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile <(printf 'subjectAltName=DNS:localhost') -out server.pem 2>/dev/null
for c in client client2; do ec $c "fluxgate-$c"; openssl x509 -req -in $c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out $c.pem 2>/dev/null; done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=stranger -keyout stranger.key -out stranger.pem 2>/dev/null
cat > nginx.conf <<N
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err info;
events {}
http { access_log $W/nginx-access.log;
  server { listen 127.0.0.1:19901 ssl; ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    ssl_client_certificate $W/ca.pem; ssl_verify_client on;
    location / { return 200 "client certificate: \$ssl_client_verify \$ssl_client_s_dn\n"; } } }
N
nginx -c $W/nginx.conf & NG=$!
sleep 0.5
gw() { # NAME EXTRA-UPSTREAM_TLS
cat > $1.yaml <<Y
listen: "127.0.0.1:18901"
admin_listen: "127.0.0.1:19991"
workers: 1
upstreams: [ { url: "https://localhost:19901", name: nginx-mtls } ]
health_check: { path: /health, interval: 1s, rise: 1 }
reload: { watch: true, interval: 500ms }
upstream_tls: { ca_file: "$W/ca.pem"$2 }
Y
}
echo; echo "== 1. without a client certificate"
gw without ""
"$BIN" serve --config without.yaml > without.log 2>&1 & G=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19991/healthz && break; sleep 0.1; done
sleep 1.5
echo '$ curl -s -i 127.0.0.1:18901/hello | head -1; the body'; curl -s -i http://127.0.0.1:18901/hello | tr -d '\r' | sed -n '1p;$p'
echo '$ curl -s 127.0.0.1:19991/stats  # upstream state'; curl -s http://127.0.0.1:19991/stats | python3 -c 'import json,sys; [print(u["name"], u["state"], "ready:", u["ready"]) for u in json.load(sys.stdin)["upstreams"]]'
echo '$ grep "health check" without.log | head -1'; grep -m1 "health check\|upstream down" without.log | cut -c1-400
kill -TERM $G; wait $G
echo; echo "== 2. with upstream_tls.certificate: client.pem (CN=fluxgate-client, signed by the CA nginx trusts)"
gw with ", certificate: \"$W/cert-in-use.pem\", key: \"$W/key-in-use.key\""
cp client.pem cert-in-use.pem; cp client.key key-in-use.key
"$BIN" check-config --config with.yaml
"$BIN" serve --config with.yaml > with.log 2>&1 & G=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19991/healthz && break; sleep 0.1; done
for _ in $(seq 50); do curl -s http://127.0.0.1:19991/stats | grep -q '"state" : "up"' && break; sleep 0.1; done
echo '$ curl -s -i 127.0.0.1:18901/hello | head -1; the body'; curl -s -i http://127.0.0.1:18901/hello | tr -d '\r' | sed -n '1p;$p'
echo '$ curl -s 127.0.0.1:19991/stats  # upstream state'; curl -s http://127.0.0.1:19991/stats | python3 -c 'import json,sys; [print(u["name"], u["state"], "ready:", u["ready"]) for u in json.load(sys.stdin)["upstreams"]]'
echo; echo "== 3. the client certificate renewed in place (client2: CN=fluxgate-client2), the watch reloads"
cp client2.key key-in-use.key; cp client2.pem cert-in-use.pem
for _ in $(seq 100); do grep -q "configuration reloaded" with.log && break; sleep 0.1; done
grep -m2 "watched file changed\|configuration reloaded" with.log | cut -c1-300

echo '$ curl -s 127.0.0.1:18901/hello'; curl -s http://127.0.0.1:18901/hello
echo; echo "== 4. a key that is not the certificate's, and a certificate nginx does not trust"
cp stranger.key key-in-use.key
echo '$ fluxgate check-config --config with.yaml   # client2.pem with stranger.key'; "$BIN" check-config --config with.yaml; echo "exit $?"
for _ in $(seq 100); do grep -q "reload refused" with.log && break; sleep 0.1; done
grep -m1 "reload refused" with.log | cut -c1-300
echo '$ curl -s 127.0.0.1:18901/hello   # the running certificate stays'; curl -s http://127.0.0.1:18901/hello
cp stranger.pem cert-in-use.pem
for _ in $(seq 100); do [ "$(grep -c 'configuration reloaded' with.log)" -ge 2 ] && break; sleep 0.1; done
echo '$ (stranger.pem + stranger.key, reloaded) curl -s -i 127.0.0.1:18901/hello   # at once: a new upstream connection, nginx refuses the certificate'
curl -s -i http://127.0.0.1:18901/hello | tr -d '\r' | sed -n '1p;/<title>/p'
for _ in $(seq 100); do curl -s http://127.0.0.1:19991/stats | grep -q '"state" : "down"' && break; sleep 0.1; done
echo '$ (once the probes have taken it out) curl -s -i 127.0.0.1:18901/hello'; curl -s -i http://127.0.0.1:18901/hello | tr -d '\r' | sed -n '1p;$p'
kill -TERM $G; wait $G; echo "gateway exit $?"
kill $NG; wait $NG 2>/dev/null
echo; echo "== nginx's access log: requests by path and status (400: no client certificate sent)"; cat nginx-access.log | awk '{print $7, $9}' | sort | uniq -c
grep -c "client sent no required SSL certificate\|certificate verify" nginx.err | sed 's/^/nginx error-log lines about client certificates: /'
