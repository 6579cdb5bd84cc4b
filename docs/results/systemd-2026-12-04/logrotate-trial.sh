#!/usr/bin/env bash
# deploy/systemd/fluxgate.logrotate run for real by logrotate (forced, its own state
# file), with the gateway under load and postrotate's `systemctl kill --signal=USR1 …`
# replaced by `kill -USR1` of the gateway (no systemd here): every request's line must be
# in the rotated file or the new one — none lost, none twice — and the new file must be
# the gateway's again. Needs logrotate, hey, curl.
# usage: bash docs/results/systemd-2026-12-04/logrotate-trial.sh [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-$here/../../../.build/release/fluxgate}")
w=$(mktemp -d); trap 'kill $gw 2>/dev/null || true; rm -rf "$w"' EXIT
mkdir "$w/log"
printf 'listen: "127.0.0.1:18971"\nadmin_listen: "127.0.0.1:20971"\nreload: { watch: false }\ndemo: { base_port: 19971 }\naccess_log: { enabled: true, path: "%s/log/access.log", flush_interval: 100ms }\n' "$w" >"$w/gw.yaml"
"$bin" --config "$w/gw.yaml" >"$w/gw.out" 2>"$w/gw.err" & gw=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18971/health && break; sleep 0.1; done
sed -e "s|/var/log/fluxgate|$w/log|" -e "s|systemctl kill --signal=USR1 --kill-whom=main fluxgate|kill -USR1 $gw|" \
  "$here/../../../deploy/systemd/fluxgate.logrotate" >"$w/logrotate.conf"
echo "# $(date -u +%FT%TZ) $("$bin" --version), $(logrotate --version 2>&1 | head -1)"
hey -z 4s -c 8 http://127.0.0.1:18971/health >"$w/hey.txt" & load=$!
sleep 2   # rotated in the middle of the load
logrotate -f -s "$w/state" "$w/logrotate.conf"
wait $load
sleep 0.5   # one flush_interval and more: the last lines are written
kill -TERM $gw; wait $gw || true
answered=$(grep -A3 'Status code distribution' "$w/hey.txt" | grep -o '\[200\][[:space:]]*[0-9]*' | grep -o '[0-9]*$')
echo "hey: $answered answered 200 over 4 s, logrotate at 2 s"
ls -l "$w/log" | awk 'NR>1 {print "  " $1, $3, $5, $9}'
old=$(ls "$w/log" | grep -v '^access.log$')
count() { wc -l <"$1" | tr -d ' '; }
echo "lines: rotated file $(count "$w/log/$old"), new file $(count "$w/log/access.log"), sum $(( $(count "$w/log/$old") + $(count "$w/log/access.log") )) (hey's $answered + the readiness probe)"
echo "request ids seen twice: $(cat "$w/log/$old" "$w/log/access.log" | grep -o 'request_id=[0-9a-f]*' | sort | uniq -d | wc -l)"
echo "gateway log: $(grep -o 'SIGUSR1: .*' "$w/gw.err" | sed "s|$w|<dir>|"); configuration reloads: $(grep -c 'configuration reloaded' "$w/gw.err" || true)"
