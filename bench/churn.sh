#!/usr/bin/env bash
# Memory per closed client connection: the release gateway (one event loop) in front of
# one demo upstream, with `hey -disable-keepalive` opening a new client connection per
# request. Prints RSS after a warm-up and after each further round of N connections,
# and the growth per connection; then the same for a gateway whose global bucket sheds
# everything (the shed path). Then memory per connection while connected: IDLE idle
# keep-alive connections held (bench/idle_conns.py), closed, held and closed again.
#
#   bash bench/churn.sh                      # N=100000, 2 rounds
#   FLUXGATE_B=/path/to/other/fluxgate bash bench/churn.sh   # the same for a second binary (A/B)
#
# Needs hey (apt-get install -y hey).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-100000}; ROUNDS=${ROUNDS:-2}; IDLE=${IDLE:-10000}; GW=${GW_PORT:-18580}; UP=${UP_PORT:-19581}
bench_need hey "apt-get install -y hey"
bench_ports_free "$GW" "$UP"
bench_setup churn

"$BIN" demo-upstream --port "$UP" --instance a --workers 1 >"$W/up.log" 2>&1 &
pids+=("$!")
bench_wait "demo upstream" "$UP"

rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

measure() {  # LABEL BINARY SHED(0|1)
  local rate=50000 burst=10000
  [[ $3 == 1 ]] && { rate=0.001; burst=1; }
  cat >"$W/gw.yaml" <<YAML
listen: "127.0.0.1:$GW"
admin_listen: "127.0.0.1:$(( GW + 2000 ))"
workers: 1
demo: { enabled: false }
upstreams: [ { url: "http://127.0.0.1:$UP" } ]
rate_limit: { global: { rate: $rate, burst: $burst }, per_client: { enabled: false } }
YAML
  "$2" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 &
  local gpid=$!; pids+=("$gpid")
  bench_wait gateway "$GW" /api/status 2>/dev/null || true
  hey -disable-keepalive -c 32 -n 20000 "http://127.0.0.1:$GW/api/status" >/dev/null
  local before; before=$(rss_kb "$gpid")
  printf "%-8s %-6s warm-up 20000 conns: %7.1f MiB" "$1" "$([[ $3 == 1 ]] && echo shed || echo proxy)" "$(awk "BEGIN{print $before/1024}")"
  local last=$before
  for r in $(seq "$ROUNDS"); do
    hey -disable-keepalive -c 32 -n "$N" "http://127.0.0.1:$GW/api/status" >"$W/hey.txt"
    local now; now=$(rss_kb "$gpid")
    printf " | +%d conns: %7.1f MiB (%+.0f B/conn)" "$N" "$(awk "BEGIN{print $now/1024}")" "$(awk "BEGIN{print ($now-$last)*1024/$N}")"
    last=$now
  done
  echo "  [$(grep -Eo '\[[0-9]{3}\][[:space:]]+[0-9]+ responses' "$W/hey.txt" | tr -s ' ' | tr '\n' ' ')]"
  if [[ $3 == 0 ]]; then
    # While connected and after close: IDLE idle keep-alive connections held, then closed, twice.
    for r in 1 2; do
      local held; held=$(python3 bench/idle_conns.py "$GW" "$IDLE" "$gpid")
      for _ in $(seq 100); do (( $(ss -Htn state established "( sport = :$GW )" | wc -l) == 0 )) && break; sleep 0.1; done
      printf "%-8s idle   %s; after all closed: %.1f MiB\n" "$1" "$held" "$(awk "BEGIN{print $(rss_kb "$gpid")/1024}")"
    done
  fi
  kill "$gpid"; wait "$gpid" 2>/dev/null || true
}

echo "== RSS of the gateway process under connection churn (hey -disable-keepalive -c 32), $(date -u +%FT%TZ), $(nproc) cores"
measure A "$BIN" 0
measure A "$BIN" 1
if [[ -n "${FLUXGATE_B:-}" ]]; then
  measure B "$FLUXGATE_B" 0
  measure B "$FLUXGATE_B" 1
fi
