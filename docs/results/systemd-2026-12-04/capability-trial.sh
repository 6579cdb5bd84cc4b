#!/usr/bin/env bash
# What deploy/systemd/fluxgate.service grants, without systemd (this VM does not boot
# it): the release build as an unprivileged user (nobody) with the ambient capability
# CAP_NET_BIND_SERVICE, as the unit's AmbientCapabilities gives, binding port 80 and
# answering; then the same without the capability, refused and named. Root needed (setpriv).
# usage: bash docs/results/systemd-2026-12-04/capability-trial.sh [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(realpath "${1:-$here/../../../.build/release/fluxgate}")
w=$(mktemp -d); chmod 755 "$w"; trap 'pkill -f "$w/fluxgate" || true; rm -rf "$w"' EXIT
cp "$src" "$w/fluxgate"; chmod 755 "$w/fluxgate"
printf 'listen: "127.0.0.1:80"\nadmin_listen: "127.0.0.1:20961"\nreload: { watch: false }\ndemo: { base_port: 19961 }\n' >"$w/gw.yaml"; chmod 644 "$w/gw.yaml"
echo "# $(date -u +%FT%TZ) $("$w/fluxgate" --version)"
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps +net_bind_service --ambient-caps +net_bind_service \
  "$w/fluxgate" --config "$w/gw.yaml" >"$w/with.log" 2>&1 & gw=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:80/health && break; sleep 0.1; done
echo "as nobody, with CAP_NET_BIND_SERVICE: GET :80/health -> $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:80/health); process user $(ps -o user= -p $gw)"
kill -TERM $gw; wait $gw || true
set +e
setpriv --reuid=65534 --regid=65534 --clear-groups "$w/fluxgate" --config "$w/gw.yaml" >"$w/without.log" 2>&1
echo "as nobody, without it: exit $?; $(grep -o 'cannot start: .*' "$w/without.log")"
