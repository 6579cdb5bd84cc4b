#!/usr/bin/env bash
# The error paths under load: the broken upstream (upstream.py) behind the release
# build, one `hey -c 8` per case for SECONDS (default 120) at once — a response followed
# by more bytes, CL+TE, a bad chunk, a close mid-body, a 101 nobody asked for, a 204
# with a body, and /ok — while the gateway's RSS and open descriptors are read every
# 10 s; then /ok must still answer and, once the load stops, the descriptors return to
# their count before it. Ports 18801/20801/19801.
# usage: bash docs/results/hostile-upstream-2026-12-04/soak.sh [SECONDS] [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-120}
bin=${2:-$here/../../../.build/release/fluxgate}
w=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$w"' EXIT
cat >"$w/gw.yaml" <<C
listen: "127.0.0.1:18801"
admin_listen: "127.0.0.1:20801"
workers: 1
upstreams: [{ name: up, url: "http://127.0.0.1:19801" }]
health_check: { passive: { enabled: false } }  # every case fails on purpose: keep the upstream in
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
demo: { enabled: false }
C
python3 "$here/upstream.py" 19801 & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19801/health && break; sleep 0.1; done
"$bin" --config "$w/gw.yaml" >"$w/out.log" 2>"$w/err.log" & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18801/ok && break; sleep 0.2; done
sample() { echo "$1 rss_kib=$(awk '/VmRSS/{print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l)"; }
echo "# $(date -u +%FT%TZ) $("$bin" --version), ${secs}s"
sample "before"
fds_before=$(ls /proc/$gw/fd | wc -l)
hey_pids=()
for p in /extra /tecl /badchunk /closemid /101 /204body /ok; do
  hey -z "${secs}s" -c 8 "http://127.0.0.1:18801$p" >"$w/hey${p//\//_}.txt" 2>&1 & hey_pids+=($!)
done
for i in $(seq 10 10 "$secs"); do sleep 10; sample "t=${i}s"; done
wait "${hey_pids[@]}"
sleep 2
sample "after"
echo "then /ok: $(curl -s -m 5 http://127.0.0.1:18801/ok)"
fds_after=$(ls /proc/$gw/fd | wc -l)
echo "descriptors before $fds_before, after $fds_after"
for p in /extra /tecl /badchunk /closemid /101 /204body /ok; do
  f="$w/hey${p//\//_}.txt"
  echo "== hey $p: $(awk '/Requests\/sec/{print $2 " req/s"}' "$f"); $(grep -E '^\s+\[[0-9]+\]' "$f" | tr -s ' ' | tr '\n' ';') errors: $(grep -cE '^\s+\[[0-9]+\].*Get' "$f" || true) $(sed -n '/Error distribution/,$p' "$f" | head -4 | tr -s ' ' | tr '\n' ' ')"
done
echo "== fluxgate_upstream_failures_total"; curl -s http://127.0.0.1:20801/metrics | grep '^fluxgate_upstream_failures_total' || true
echo "== error log warnings: $(grep -c 'upstream sent an invalid response' "$w/err.log" || true) lines (at most one a second)"
[ "$fds_after" -le $((fds_before + 2)) ] || { echo "descriptors did not come back" >&2; exit 1; }
