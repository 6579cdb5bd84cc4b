#!/usr/bin/env bash
# A deliberately broken upstream (upstream.py: one canned answer per path) behind the
# release build; each case is requested with curl, then /ok on a new connection (the
# pool must not hand out a desynchronised connection). Prints what the client saw
# (status, bytes, curl's exit code: 18 = response cut off before its announced end),
# then the access log and the error log's warnings. Ports 18801/20801/19801.
# usage: bash docs/results/hostile-upstream-2026-12-04/trial.sh [BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../../.build/release/fluxgate}
w=$(mktemp -d)
trap 'kill $up $gw 2>/dev/null || true; rm -rf "$w"' EXIT
cat >"$w/gw.yaml" <<C
listen: "127.0.0.1:18801"
admin_listen: "127.0.0.1:20801"
workers: 1
upstreams: [{ name: up, url: "http://127.0.0.1:19801" }]
health_check: { interval: 1s }
demo: { enabled: false }
timeouts: { upstream_header: 2s }
access_log: { enabled: true, path: "$w/access.log", flush_interval: 0s }
C
python3 "$here/upstream.py" 19801 & up=$!
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19801/health && break; sleep 0.1; done
"$bin" --config "$w/gw.yaml" >"$w/out.log" 2>"$w/err.log" & gw=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18801/ok && break; sleep 0.2; done
echo "# $(date -u +%FT%TZ) $("$bin" --version)"
printf "%-11s %-6s %-8s %-9s %s\n" case status bytes curl-exit "then /ok"
for p in /extra /smuggle /204body /304body /103 /100 /closemid /nocl /tecl /badchunk /hugehead /101 /dupcl \
         /http10 /garbage /lfonly /neg /sp /status999 /nostatus /chunkext /trailers /silent; do
  set +e
  read -r code size < <(curl -s -m 8 -o /dev/null -w "%{http_code} %{size_download}" "http://127.0.0.1:18801$p")
  rc=$(curl -s -m 8 -o /dev/null "http://127.0.0.1:18801$p"; echo $?)
  after=$(curl -s -m 8 "http://127.0.0.1:18801/ok")
  set -e
  printf "%-11s %-6s %-8s %-9s %s\n" "$p" "$code" "$size" "$rc" "$after"
done
sleep 0.5
echo; echo "== access log"; cat "$w/access.log"
echo; echo "== error log (warnings and above)"; grep -E "warning|error" "$w/err.log" "$w/out.log" | sed "s|$w/||" || true
