#!/usr/bin/env bash
# New TLS connections one after another (openssl s_time -new, one GET / each, 10 s a round, 6 rounds)
# against the release build: the gateway's RSS and descriptors after each round, with tls alone and
# with tls.verify_client: on (every connection presents client.pem; its certificate read, parsed and
# forwarded as X-Forwarded-Client-Cert). Files from listener-mtls.sh (in /tmp/mt).
set -u
BIN=${BIN:-/work/main/.build/release/fluxgate}; cd /tmp/mt
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD))"
sed 's/, verify_client: on, client_ca_file: ca.pem//; s/verify_client: optional/verify_client: on/' gw.yaml > plain.yaml
sed 's/verify_client: optional/verify_client: on/' gw.yaml > mtls.yaml
python3 echo.py & E=$!
for mode in plain mtls; do
  $BIN --config $mode.yaml > $mode.log 2>&1 & G=$!
  for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19443/readyz)" = 200 ] && break; sleep 0.1; done
  echo "== $mode: $(grep '^tls' $mode.yaml)"
  echo "start rss_kib=$(awk '/VmRSS/{print $2}' /proc/$G/status) fds=$(ls /proc/$G/fd | wc -l)"
  extra=(); [ $mode = mtls ] && extra=(-cert client.pem -key client-key.pem)
  for r in 1 2 3 4 5 6; do
    n=$(openssl s_time -connect 127.0.0.1:18443 -new "${extra[@]}" -CAfile server.pem -www / -time 10 2>&1 | grep -E "connections in [0-9.]+s" | head -1 | cut -d';' -f1)
    echo "round $r: $n; rss_kib=$(awk '/VmRSS/{print $2}' /proc/$G/status) fds=$(ls /proc/$G/fd | wc -l)"
  done
  curl -s http://127.0.0.1:19443/metrics | grep -E '^fluxgate_requests_total' | grep -v " 0$"
  kill -TERM $G; wait $G
done
kill $E; wait 2>/dev/null
