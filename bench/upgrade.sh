#!/usr/bin/env bash
# Replacing the gateway process under load (a measurement with a verdict): Fluxgate in
# front of two demo upstreams carries two loads at once — `hey -disable-keepalive` (a new
# connection for every request) and `wrk -c32` (keep-alive) — while it is replaced
# UPGRADES times, EVERY seconds apart:
#   upgrade  SIGUSR2: the binary starts again on the same listening sockets and the old
#            process drains once the new one serves (docs/OPERATIONS.md, "Restarts and
#            upgrades without a refused connection");
#   restart  SIGTERM, and a new process started once the old one has exited — a restart
#            without the sockets handed over, for comparison.
# Verdict (upgrade only): every request answered 200, no socket error on either load,
# one gateway process at the end — a new one, serving, on its two listening sockets.
# Needs hey, wrk, curl (apt); builds Fluxgate in release mode.
# Env: MODE (upgrade, restart or both; both), UPGRADES (3), EVERY (3), GW_PORT (18951).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
MODE=${MODE:-both}; UPGRADES=${UPGRADES:-3}; EVERY=${EVERY:-3}
GW=${GW_PORT:-18951}; ADMIN=$((GW + 2000)); UP1=19951; UP2=19952
bench_need hey "apt-get install -y hey"
bench_need wrk "apt-get install -y wrk"
bench_need curl "apt-get install -y curl"
bench_ports_free "$GW" "$ADMIN" "$UP1" "$UP2"
bench_setup upgrade
trap 'pkill -f -- "--config $W/gw.yaml" 2>/dev/null || true; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

"$BIN" demo-upstream --port "$UP1" --instance a >"$W/up1.log" 2>&1 & pids+=($!)
"$BIN" demo-upstream --port "$UP2" --instance b >"$W/up2.log" 2>&1 & pids+=($!)
bench_wait "upstream a" "$UP1"; bench_wait "upstream b" "$UP2"
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:$GW"
admin_listen: "127.0.0.1:$ADMIN"
demo: { enabled: false }
rate_limit: { global: { enabled: false } }
upstreams: [ "http://127.0.0.1:$UP1", "http://127.0.0.1:$UP2" ]
C
gateways() { pgrep -f -- "--config $W/gw.yaml" || true; }
descriptors() { ls "/proc/$1/fd" | wc -l; }
one_gateway() {  # waits up to 40 s (the drain) for a single gateway process; prints its pid
  for _ in $(seq 400); do
    local list; list=$(gateways)
    if [ "$(echo "$list" | grep -c .)" = 1 ]; then echo "$list"; return; fi
    sleep 0.1
  done
  echo "more or fewer than one gateway process: $(gateways | tr '\n' ' ')" >&2; exit 1
}

run() {  # MODE
  local mode=$1 log="$W/$1"
  "$BIN" --config "$W/gw.yaml" >>"$log.gw.out" 2>>"$log.gw.err" &
  bench_wait gateway "$ADMIN" /readyz
  local first; first=$(one_gateway)
  local before; before=$(descriptors "$first")
  local duration=$(( (UPGRADES + 1) * EVERY ))
  hey -z "${duration}s" -c 8 -disable-keepalive "http://127.0.0.1:$GW/api/status" >"$log.hey.txt" 2>&1 & local hey_pid=$!
  wrk -t1 -c32 -d"${duration}s" "http://127.0.0.1:$GW/api/status" >"$log.wrk.txt" 2>&1 & local wrk_pid=$!
  for i in $(seq "$UPGRADES"); do
    sleep "$EVERY"
    local pid; pid=$(one_gateway)
    if [ "$mode" = upgrade ]; then
      kill -USR2 "$pid"
    else
      kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
      "$BIN" --config "$W/gw.yaml" >>"$log.gw.out" 2>>"$log.gw.err" &
    fi
    echo "$(date -u +%T.%N | cut -c1-12) $mode $i: process $pid replaced" >>"$log.events"
  done
  wait "$hey_pid" "$wrk_pid" || true
  local last; last=$(one_gateway)
  sleep 1  # the clients' last connections close
  local after; after=$(descriptors "$last")
  local listening; listening=$(ss -Hltnp 2>/dev/null | grep -c "pid=$last," || true)
  local status; status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW/api/status")
  local ok2xx nonok errors wrk_errors wrk_non2xx
  ok2xx=$(awk '/\[200\]/{print $2}' "$log.hey.txt"); ok2xx=${ok2xx:-0}
  nonok=$(awk '/Status code distribution/{f=1;next} f&&/\[[0-9]+\]/&&!/\[200\]/{s+=$2} /Error distribution/{f=0} END{print s+0}' "$log.hey.txt")
  errors=$(awk '/Error distribution/{f=1;next} f&&/\[[0-9]+\]/{s+=substr($1,2)+0} END{print s+0}' "$log.hey.txt")
  wrk_errors=$(awk '/Socket errors/{gsub(",","");print $4+$6+$8+$10}' "$log.wrk.txt"); wrk_errors=${wrk_errors:-0}
  wrk_non2xx=$(awk '/Non-2xx/{print $NF}' "$log.wrk.txt"); wrk_non2xx=${wrk_non2xx:-0}
  local wrk_requests; wrk_requests=$(awk '/requests in/{print $1}' "$log.wrk.txt")
  printf '%-8s hey (new connection each): %6d x 200, %d other, %d errors | wrk -c32 (keep-alive): %7d requests, %d non-2xx, %d socket errors | processes %s -> %s (listening sockets %d), descriptors %d at start -> %d after the load (pooled upstream connections), then %s\n' \
    "$mode" "$ok2xx" "$nonok" "$errors" "$wrk_requests" "$wrk_non2xx" "$wrk_errors" "$first" "$last" "$listening" "$before" "$after" "$status" | tee -a "$W/summary.txt"
  kill -TERM "$last"; while kill -0 "$last" 2>/dev/null; do sleep 0.05; done
  if [ "$mode" = upgrade ]; then
    [ "$nonok" = 0 ] && [ "$errors" = 0 ] && [ "$wrk_errors" = 0 ] && [ "$wrk_non2xx" = 0 ] && [ "$status" = 200 ] \
      && [ "$last" != "$first" ] && [ "$listening" = 2 ] || { echo "upgrade: FAILED (see $log.*)" >&2; verdict=1; }
  fi
}

verdict=0
echo "== $UPGRADES replacements, $EVERY s apart, under hey -c8 -disable-keepalive and wrk -c32 ($(nproc) cores, $(date -u +%F))"
case $MODE in
  upgrade|restart) run "$MODE" ;;
  both) run upgrade; run restart ;;
  *) echo "MODE is upgrade, restart or both" >&2; exit 2 ;;
esac
echo "== logs and client outputs: $W"
grep -h "SIGUSR2\|upgrade\|drain" "$W"/upgrade.gw.err 2>/dev/null | cut -c1-220 | head -20 || true
exit "$verdict"
