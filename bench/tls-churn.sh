#!/usr/bin/env bash
# Memory per closed TLS connection, both sides of the gateway: Fluxgate A (one event
# loop) terminates TLS for `hey -disable-keepalive` (a new client connection and
# handshake per request) and proxies to an `https://` upstream — Fluxgate B terminating
# TLS in front of a demo upstream, with `limits.max_requests_per_connection: 1`, so A
# opens a new upstream connection and handshake per request too. Prints the RSS and open
# descriptors of A and B after a warm-up and after each round of N requests, and the
# growth per connection. (bench/churn.sh does the same for plain TCP.)
#
#   bash bench/tls-churn.sh               # N=50000, 4 rounds
#   N=50000 ROUNDS=8 bash bench/tls-churn.sh
#
# Needs hey and openssl (apt-get install -y hey openssl).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-50000}; ROUNDS=${ROUNDS:-4}; GW=${GW_PORT:-18590}; MID=${MID_PORT:-18591}; UP=${UP_PORT:-19581}
bench_need hey "apt-get install -y hey"
bench_ports_free "$GW" "$MID" "$UP"
bench_setup tlschurn
bench_tls_certificate
"$BIN" demo-upstream --port "$UP" --instance a --workers 1 >"$W/up.log" 2>&1 & pids+=($!)
bench_wait "demo upstream" "$UP"
bench_tls_gateway_config "$MID" "http://127.0.0.1:$UP" "limits: { max_requests_per_connection: 1 }" >"$W/b.yaml"
bench_tls_gateway_config "$GW" "https://localhost:$MID" "upstream_tls: { ca_file: \"$W/cert.pem\" }" >"$W/a.yaml"
"$BIN" --config "$W/b.yaml" >"$W/b.log" 2>&1 & bpid=$!; pids+=($bpid)
"$BIN" --config "$W/a.yaml" >"$W/a.log" 2>&1 & apid=$!; pids+=($apid)
for _ in $(seq 100); do curl -skf -o /dev/null "https://127.0.0.1:$GW/api/status" && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
url="https://127.0.0.1:$GW/api/status"
echo "== RSS under TLS connection churn, both sides (hey -disable-keepalive -c 32; B closes each upstream connection after one request), $(date -u +%FT%TZ), $(nproc) cores, $BIN"
hey -disable-keepalive -c 32 -n 10000 "$url" >/dev/null
la=$(rss "$apid"); lb=$(rss "$bpid")
printf "warm-up 10000: A %.1f MiB, %d fds | B %.1f MiB, %d fds\n" "$(awk "BEGIN{print $la/1024}")" "$(fds "$apid")" "$(awk "BEGIN{print $lb/1024}")" "$(fds "$bpid")"
for r in $(seq "$ROUNDS"); do
  hey -disable-keepalive -c 32 -n "$N" "$url" >"$W/hey.txt"
  a=$(rss "$apid"); b=$(rss "$bpid")
  printf "round %d +%d: A %.1f MiB (%+.0f B/conn), %d fds | B %.1f MiB (%+.0f B/conn), %d fds | %s\n" "$r" "$N" \
    "$(awk "BEGIN{print $a/1024}")" "$(awk "BEGIN{print ($a-$la)*1024/$N}")" "$(fds "$apid")" \
    "$(awk "BEGIN{print $b/1024}")" "$(awk "BEGIN{print ($b-$lb)*1024/$N}")" "$(fds "$bpid")" \
    "$(grep -Eo '\[[0-9]{3}\][[:space:]]+[0-9]+ responses' "$W/hey.txt" | tr -s ' \t' ' ' | tr '\n' ' ')$(grep -q 'Error distribution' "$W/hey.txt" && echo ' + errors' || true)"
  la=$a; lb=$b
done
sed -n '/Error distribution/,$p' "$W/hey.txt"
echo "B's upstream connections closed after one request: $(curl -s "http://127.0.0.1:$(( MID + 2000 ))/metrics" | awk '/^fluxgate_connections_recycled_total\{reason="max_requests_per_connection"\}/{print $2}')"
