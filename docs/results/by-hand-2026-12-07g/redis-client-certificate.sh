#!/usr/bin/env bash
# By hand: cluster mode against a redis-server speaking TLS only with its default
# tls-auth-clients yes (it asks every client for a certificate). BIN = the release build.
set -u
BIN=${BIN:?}; W=/tmp/rc/w; rm -rf $W; mkdir -p $W; cd $W
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD)); $(redis-server --version | cut -d' ' -f1-3)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
for n in redis:localhost replica:fluxgate-replica; do f=${n%%:*}; cn=${n#*:}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $f.key -subj "/CN=$cn" -out $f.csr 2>/dev/null
  openssl x509 -req -in $f.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile <(printf 'subjectAltName=DNS:localhost') -out $f.pem 2>/dev/null
done
echo '$ redis-server --port 0 --tls-port 16390 --tls-cert-file redis.pem --tls-key-file redis.key --tls-ca-cert-file ca.pem   # tls-auth-clients: its default'
redis-server --port 0 --tls-port 16390 --tls-cert-file redis.pem --tls-key-file redis.key --tls-ca-cert-file ca.pem --save "" --appendonly no > redis.log 2>&1 & R=$!
sleep 0.5
redis-cli --tls --cacert ca.pem --cert replica.pem --key replica.key -p 16390 CONFIG GET tls-auth-clients | tr '\n' ' '; echo
gw() { cat > $1.yaml <<Y
listen: "127.0.0.1:18951"
admin_listen: "127.0.0.1:19951"
workers: 1
demo: { base_port: 19961 }
cluster:
  redis_url: "rediss://localhost:16390"
  tls_ca_file: "$W/ca.pem"$2
  replica_id: by-hand
Y
}
stats() { curl -s http://127.0.0.1:19951/stats | python3 -c 'import json,sys; c=json.load(sys.stdin)["cluster"]; print({k: c[k] for k in ("redis", "store_up", "mode") if k in c})'; }
echo; echo "== 1. no client certificate"
gw without ""
"$BIN" check-config --config without.yaml
"$BIN" serve --config without.yaml > without.log 2>&1 & G=$!
sleep 3
echo '$ curl -s 127.0.0.1:19951/stats | .cluster'; stats
echo '$ grep -i redis without.log | head -2'; grep -i "redis" without.log | head -2 | cut -c1-300
kill -TERM $G; wait $G
echo; echo "== 2. cluster.tls_certificate: replica.pem (CN=fluxgate-replica, signed by the CA redis trusts)"
gw with "
  tls_certificate: \"$W/replica.pem\"
  tls_key: \"$W/replica.key\""
"$BIN" check-config --config with.yaml
"$BIN" serve --config with.yaml > with.log 2>&1 & G=$!
sleep 3
echo '$ curl -s 127.0.0.1:19951/stats | .cluster'; stats
echo '$ curl -s -o /dev/null -w "%{http_code}\n" 127.0.0.1:18951/health'; curl -s -o /dev/null -w "%{http_code}\n" http://127.0.0.1:18951/health
echo '$ redis-cli --tls ... KEYS "fluxgate:*"'; redis-cli --tls --cacert ca.pem --cert replica.pem --key replica.key -p 16390 KEYS 'fluxgate:*'
kill -TERM $G; wait $G; echo "gateway exit $?"
echo; echo "== 3. a key that is not the certificate's"
cp ca.key wrong.key
gw wrong "
  tls_certificate: \"$W/replica.pem\"
  tls_key: \"$W/wrong.key\""
echo '$ fluxgate check-config --config wrong.yaml'; "$BIN" check-config --config wrong.yaml; echo "exit $?"
kill $R; wait $R 2>/dev/null
echo; echo "== redis-server's log lines about clients without a certificate"; grep -c "Error accepting a client connection" redis.log; grep -m1 "Error accepting" redis.log | cut -c1-200
