#!/usr/bin/env bash
# An in-place upgrade whose new binary never starts serving (a test with a verdict):
# Fluxgate (a copy of the release build in a scratch folder) in front of a demo upstream;
# the binary at its path is replaced by a script that sleeps, and SIGUSR2 is sent. The
# old process holds its accepts while the new one starts, and until 2026-12-06 it held
# them for as long as that process lived: every new connection waited in the accept
# queue, on the data port and the admin listener alike. Now it accepts again after
# UpgradeState.takeOverDeadline (5 s).
# Verdict: one request started 0.5 s after the signal is answered 200 within the deadline
# plus 3 s; the log names the overdue process; the old process is the one serving; when
# the stuck process is killed the log says the upgrade failed; with the real binary back,
# a second SIGUSR2 hands over (a new process serves, the old one exits).
# Needs curl; builds Fluxgate in release mode. Env: GW_PORT (18961).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
GW=${GW_PORT:-18961}; ADMIN=$((GW + 2000)); UP=19961
bench_need curl "apt-get install -y curl"
bench_ports_free "$GW" "$ADMIN" "$UP"
bench_setup upgrade-stuck
trap 'pkill -f -- "--config $W/gw.yaml" 2>/dev/null || true; [ -n "${stuck:-}" ] && kill "$stuck" 2>/dev/null || true; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
mkdir -p "$W/bin"
cp "$BIN" "$W/bin/fluxgate"
"$BIN" demo-upstream --port "$UP" --instance a >"$W/up.log" 2>&1 & pids+=($!)
bench_wait upstream "$UP"
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:$GW"
admin_listen: "127.0.0.1:$ADMIN"
demo: { enabled: false }
upstreams: [ "http://127.0.0.1:$UP" ]
C
"$W/bin/fluxgate" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 &
old=$!
bench_wait gateway "$ADMIN" /readyz
fail=0
verdict() { if [ "$1" = ok ]; then echo "ok   $2"; else echo "FAIL $2"; fail=1; fi; }

mv "$W/bin/fluxgate" "$W/bin/fluxgate.real"
printf '#!/bin/sh\nexec sleep 600\n' >"$W/bin/fluxgate"
chmod +x "$W/bin/fluxgate"
start=$(date +%s.%N)
kill -USR2 "$old"
sleep 0.5
answer=$(curl -s -m 15 -o /dev/null -w "%{http_code} %{time_total}" "http://127.0.0.1:$GW/api/status" || true)
admin=$(curl -s -m 15 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$ADMIN/healthz" || true)
read -r code took <<<"$answer"
echo "# SIGUSR2 with a binary that sleeps: a request sent 0.5 s later answered $code after ${took} s; the admin listener then: $admin"
verdict "$([ "$code" = 200 ] && awk -v t="$took" 'BEGIN { exit !(t < 8) }' && echo ok)" "answered 200 within the 5 s deadline + 3 s ($took s)"
verdict "$([ "$admin" = 200 ] && echo ok)" "the admin listener answers again"
verdict "$(grep -q "neither taken over nor exited" "$W/gw.log" && echo ok)" "the log names the overdue process"
verdict "$(kill -0 "$old" 2>/dev/null && echo ok)" "the old process serves"
stuck=$(sed -n 's/.*pid=\([0-9]*\).*SIGUSR2: started a new gateway process.*/\1/p' "$W/gw.log" | head -1)
kill "$stuck"
for _ in $(seq 50); do grep -q "upgrade failed" "$W/gw.log" && break; sleep 0.1; done
verdict "$(grep -q "upgrade failed: the new process was killed by signal 15 before it took over" "$W/gw.log" && echo ok)" "killing the stuck process ends the upgrade, named in the log"
mv "$W/bin/fluxgate.real" "$W/bin/fluxgate"
kill -USR2 "$old"
for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
new=$(pgrep -f -- "--config $W/gw.yaml" | head -1 || true)
code=$(curl -s -m 5 -o /dev/null -w "%{http_code}" "http://127.0.0.1:$GW/api/status" || true)
verdict "$( ! kill -0 "$old" 2>/dev/null && [ -n "$new" ] && [ "$new" != "$old" ] && [ "$code" = 200 ] && echo ok)" "with the real binary back, an upgrade hands over (new process $new answers $code; old $old exited)"
sed 's/^/  log: /' "$W/gw.log" | grep -E "SIGUSR2|upgrade|drain" || true
[ "$fail" = 0 ] && echo "verdict: ok" || { echo "verdict: FAIL"; exit 1; }
