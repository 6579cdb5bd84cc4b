#!/usr/bin/env bash
# A misbehaving upstream under lasting traffic: the release gateway in front of
# bench/hostile_upstream.py (broken framing, answers outside a response, junk after an
# answer, heads and bodies that stall, resets, huge heads: 23 kinds, one picked per
# request) and one demo upstream, with clients that go away at bad moments; samples the
# gateway's memory and descriptors and fails when memory keeps growing, descriptors do
# not come back, an answer reaches the wrong request, or the drain does not exit 0.
#
#   bash bench/hostile-upstream.sh            # 10 minutes
#   bash bench/hostile-upstream.sh --ci       # 60 s (what .ci/run runs)
#   DURATION=1200 bash bench/hostile-upstream.sh
#
# Traffic, all at once for DURATION seconds (127.0.0.1 only):
#   wrk, 32 keep-alive connections: GET /chaos/random and GET /api/status in turn, so
#     every broken answer lands between ordinary ones on the same client connections
#     and the same pooled upstream connections;
#   soak_client.py integrity, 8 connections: pipelined POST/PUT /api/echo checked answer
#     by answer (its own X-Request-ID, its own echoed id) — the hostile upstream echoes
#     correctly, so an echo that comes back wrong is the gateway's fault;
#   soak_client.py abort, 8 connections: clients leaving mid-head, mid-body,
#     mid-response, by reset or half-close.
# Passive ejection is off, so the hostile upstream keeps taking half the requests (with
# it on, five failures in a row eject it and the run would test the demo upstream).
#
# Verdict: as bench/soak.sh (RSS growth between the second and last third of the
# samples within max(RSS_MARGIN_MB, RSS_MARGIN_PCT %); descriptors back to the
# pre-traffic baseline within 30 s; no mismatched answer) plus the gateway's exit
# status after SIGTERM. Output (samples.tsv, verdict.txt, the gateway's counters) in
# OUT (default: a new folder under /tmp).
set -euo pipefail
USAGE_ARGS=--ci; source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-600}; SAMPLE=${SAMPLE:-2}
if [[ "${1:-}" == "--ci" ]]; then DURATION=${DURATION_CI:-60}; fi
RSS_MARGIN_MB=${RSS_MARGIN_MB:-8}; RSS_MARGIN_PCT=${RSS_MARGIN_PCT:-10}
GW=${GW_PORT:-18580}; U1=${U1_PORT:-19581}; U2=${U2_PORT:-19582}
ADMIN=$(( GW + 2000 ))

bench_need wrk "apt-get install -y wrk"
bench_ports_free "$GW" "$ADMIN" "$U1" "$U2"
bench_setup hostile-upstream
OUT=${OUT:-$W}; mkdir -p "$OUT"
HERE=$PWD/bench

{ bench_gateway_head "$GW"; cat <<YAML
upstreams:
  - { name: hostile, url: "http://127.0.0.1:$U1", max_concurrency: 100 }
  - { name: demo, url: "http://127.0.0.1:$U2", max_concurrency: 100 }
health_check: { passive: { enabled: false } }
timeouts: { upstream_header: 1s, upstream_read: 1s, client_header: 2s, client_body: 2s, client_send: 3s, idle: 5s, park_after: 1s, lingering_close: 1s }
YAML
} >"$W/gateway.yaml"

python3 "$HERE/hostile_upstream.py" "$U1" >"$W/hostile.log" 2>&1 & pids+=("$!")
"$BIN" demo-upstream --port "$U2" --instance d --workers 1 >"$W/demo.log" 2>&1 & pids+=("$!")
bench_wait "hostile upstream" "$U1"
bench_wait "demo upstream" "$U2"
"$BIN" --config "$W/gateway.yaml" >"$W/gateway.out" 2>"$W/gateway.log" &
GPID=$!; pids+=("$GPID")
bench_wait gateway "$ADMIN" /readyz

fds() { bench_fds "$GPID"; }
rss_kb() { bench_rss_kb "$GPID"; }
sleep 1
BASE_FDS=$(fds)
echo "gateway pid $GPID, baseline: $(rss_kb) KiB RSS, $BASE_FDS descriptors; ${DURATION}s of traffic; output in $OUT"

bench_sample "$GPID" "$OUT/samples.tsv" "$SAMPLE"

cat >"$W/mix.lua" <<'LUA'
local i = 0
request = function()
  i = i + 1
  if i % 2 == 0 then return wrk.format("GET", "/api/status") end
  return wrk.format("GET", "/chaos/random")
end
LUA
wrk -t1 -c32 -d"${DURATION}s" -s "$W/mix.lua" "http://127.0.0.1:$GW" >"$OUT/wrk.txt" 2>&1 &
WRK=$!
python3 "$HERE/soak_client.py" integrity "$GW" 8 "$DURATION" >"$OUT/integrity.json" &
INTEGRITY=$!
python3 "$HERE/soak_client.py" abort "$GW" 8 "$DURATION" >"$OUT/abort.json" &
ABORT=$!
wait "$WRK" || true
wait "$INTEGRITY" && integrity_ok=1 || integrity_ok=0
wait "$ABORT" && abort_ok=1 || abort_ok=0
TRAFFIC_END=$(( $(date +%s) - T0 ))

bench_fds_back "$GPID" "$BASE_FDS"
kill "$SAMPLER" 2>/dev/null || true
curl -s "http://127.0.0.1:$ADMIN/metrics" >"$OUT/metrics.txt"
kill -TERM "$GPID"; wait "$GPID" && exit_ok=1 || exit_ok=0

{
  echo "duration ${TRAFFIC_END}s of traffic, samples every ${SAMPLE}s"
  bench_rss_verdict "$OUT/samples.tsv" "$TRAFFIC_END" "$RSS_MARGIN_MB" "$RSS_MARGIN_PCT"
  echo "$([[ $FDS_OK == 1 ]] && echo ok || echo FAIL) descriptors: baseline $BASE_FDS, after traffic $FINAL_FDS"
  echo "$([[ $integrity_ok == 1 && $abort_ok == 1 ]] && echo ok || echo FAIL) integrity: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%d pipelined echoes on %d connections, %d mismatched, %d answered 200, others %s" % (d["requests"], d["connections"], d["mismatches"], d["ok"], d["other_status"]))' "$OUT/integrity.json")"
  echo "$([[ $exit_ok == 1 ]] && echo ok || echo FAIL) drain: the gateway exited $([[ $exit_ok == 1 ]] && echo 0 || echo non-zero) after SIGTERM"
  echo "   wrk: $(grep -E "requests in|Non-2xx|Socket errors" "$OUT/wrk.txt" | tr -s ' \n' ' ')"
  echo "   the gateway's counters: $(grep -E '^fluxgate_request_outcomes_total|^fluxgate_upstream_failures_total|^fluxgate_retries_total' "$OUT/metrics.txt" | grep -v ' 0$' | sed 's/fluxgate_//' | tr '\n' ' ')"
} | tee "$OUT/verdict.txt"
! grep -q FAIL "$OUT/verdict.txt"
