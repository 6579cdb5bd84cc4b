#!/usr/bin/env bash
# A hostile client's "query of death" beside ordinary traffic: the release gateway
# (one event loop) in front of three upstreams (bench/qod_upstream.py) that close the
# connection unanswered on GET /qod and answer 200 otherwise. One hey sends /ok on 16
# connections for DURATION seconds, another /qod on 16 connections at up to 50/s each.
#
#   bash bench/query-of-death.sh                 # 30 s, the default config
#   EXTRA='health_check: { passive: { max_ejection_percent: 100 } }' bash bench/query-of-death.sh
#
# What it shows: what each /qod costs the upstreams (attempts = 1 + retries, by cause,
# from the gateway's counters), whether the ordinary requests are all answered 200,
# how many upstreams passive ejection took out (the log's flips; the cap
# health_check.passive.max_ejection_percent, default 10 %: one of three) and how many
# ejections the cap refused, and the gateway's memory and descriptors.
# Fails when an /ok answer is not 200, when a request is shed for want of an upstream,
# or when descriptors are not back to the baseline 30 s after the traffic.
# Output (samples.tsv, verdict.txt, metrics.txt, gateway.log) in OUT (default: a new
# folder under /tmp).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-30}
GW=${GW_PORT:-18590}; U=${U_PORT:-19591}
ADMIN=$(( GW + 2000 ))
bench_need hey "apt-get install -y hey"
bench_ports_free "$GW" "$ADMIN" "$U" $(( U + 1 )) $(( U + 2 ))
bench_setup query-of-death
OUT=${OUT:-$W}; mkdir -p "$OUT"

{ bench_gateway_head "$GW"; cat <<YAML
rate_limit: { per_client: { enabled: false } }
upstreams:
  - { url: "http://127.0.0.1:$U", max_concurrency: 100 }
  - { url: "http://127.0.0.1:$(( U + 1 ))", max_concurrency: 100 }
  - { url: "http://127.0.0.1:$(( U + 2 ))", max_concurrency: 100 }
${EXTRA:-}
YAML
} >"$W/gateway.yaml"

for port in "$U" $(( U + 1 )) $(( U + 2 )); do  # a process each: Python's threads share one core
  python3 bench/qod_upstream.py "$port" >>"$W/upstreams.log" 2>&1 & pids+=("$!")
done
for port in "$U" $(( U + 1 )) $(( U + 2 )); do bench_wait upstream "$port" /ok; done
"$BIN" --config "$W/gateway.yaml" >"$W/gateway.out" 2>"$OUT/gateway.log" &
GPID=$!; pids+=("$GPID")
bench_wait gateway "$ADMIN" /readyz

fds() { bench_fds "$GPID"; }
BASE_FDS=$(fds)
bench_sample "$GPID" "$OUT/samples.tsv" 2

hey -z "${DURATION}s" -c 16 "http://127.0.0.1:$GW/ok" >"$OUT/ok.txt" 2>&1 &
OK=$!
hey -z "${DURATION}s" -c 16 -q 50 "http://127.0.0.1:$GW/qod" >"$OUT/qod.txt" 2>&1 &
QOD=$!
wait "$OK" "$QOD"
bench_fds_back "$GPID" "$BASE_FDS"
kill "$SAMPLER" 2>/dev/null || true
curl -s "http://127.0.0.1:$ADMIN/metrics" >"$OUT/metrics.txt"
kill -TERM "$GPID"; wait "$GPID" || true

metric() { awk -v k="$1" 'index($0, k) == 1 { s += $NF } END { printf "%d", s }' "$OUT/metrics.txt"; }
statuses() { grep -E '^\s+\[[0-9]+\]' "$1" | tr -s ' \t' ' ' | tr '\n' ';'; }
ok_not_200=$(grep -E '^\s+\[[0-9]+\]' "$OUT/ok.txt" | { grep -v '\[200\]' || true; } | awk '{ s += $2 } END { print s + 0 }')
ok_errors=$(grep -cE '^\s+\[[0-9]+\]\s+Get ' "$OUT/ok.txt" || true)
qod_total=$(grep -E '^\s+\[[0-9]+\]' "$OUT/qod.txt" | awk '{ s += $2 } END { print s + 0 }')
retries=$(metric 'fluxgate_retries_total{')
no_upstream=$(metric 'fluxgate_shed_total{reason="no_healthy_upstream"')
max_out=$(awk '/upstream down/ { out++; if (out > max) max = out } /upstream up/ { out-- } END { print max + 0 }' "$OUT/gateway.log")
{
  echo "$(date -u) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- Sources 2>/dev/null || echo ' + uncommitted changes to Sources'), ${DURATION}s, workers: 1${EXTRA:+, with: $EXTRA}"
  echo "$([[ $ok_not_200 == 0 && $ok_errors == 0 ]] && echo ok || echo FAIL) /ok: $(statuses "$OUT/ok.txt") $(grep -E 'Requests/sec' "$OUT/ok.txt" | tr -s ' \t' ' ')"
  echo "   /qod: $(statuses "$OUT/qod.txt") upstream attempts per /qod: $(python3 -c "print(round(1 + $retries / max($qod_total, 1), 2))") (retries $retries over $qod_total)"
  echo "   retries by cause: $(grep -E '^fluxgate_retries_total\{' "$OUT/metrics.txt" | sed 's/fluxgate_retries_total//' | tr '\n' ' ')budget refusals $(metric fluxgate_retry_budget_exhausted_total)"
  echo "   ejections $(metric 'fluxgate_upstream_ejections_total{'), refused by the cap $(metric 'fluxgate_upstream_ejections_overflow_total{'), most upstreams out at once $max_out of 3"
  echo "$([[ $no_upstream == 0 ]] && echo ok || echo FAIL) sheds for want of an upstream: $no_upstream"
  echo "$([[ $FDS_OK == 1 ]] && echo ok || echo FAIL) descriptors: baseline $BASE_FDS, after traffic $FINAL_FDS; RSS $(sed -n 2p "$OUT/samples.tsv" | cut -f2) → $(tail -1 "$OUT/samples.tsv" | cut -f2) KiB"
} | tee "$OUT/verdict.txt"
! grep -q FAIL "$OUT/verdict.txt"
