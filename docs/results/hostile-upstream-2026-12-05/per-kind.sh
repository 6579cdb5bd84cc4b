#!/usr/bin/env bash
# Each broken answer of bench/hostile_upstream.py alone, through the release gateway
# (one.yaml: the hostile upstream only, so nothing is resent elsewhere; upstream_header
# and upstream_read 1 s): curl's status, exit code (18: body shorter than announced,
# 52: nothing received, 56: receive failure, 61: unknown transfer encoding), bytes,
# time; then whether the next request on a fresh connection is answered 200.
# Run from the repository root after scripts/build-release.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); BIN=${FLUXGATE_BIN:-.build/release/fluxgate}
python3 bench/hostile_upstream.py 18001 & up=$!
sleep 0.3
(cd "$HERE" && exec "$OLDPWD/$BIN" --config one.yaml 2>/dev/null) & gw=$!
for _ in $(seq 50); do curl -sf -o /dev/null 127.0.0.1:19090/readyz && break; sleep 0.1; done
git log -1 --format='fluxgate %h'
for kind in $(python3 -c 'import sys; sys.path.insert(0, "bench"); import hostile_upstream as h; print(" ".join(h.KINDS))'); do
  printf '%-16s ' "$kind"
  curl -s -o /dev/null --max-time 6 -w 'status=%{http_code} exit=%{exitcode} bytes=%{size_download} t=%{time_total}s' "127.0.0.1:18080/chaos/$kind"
  printf '  next: %s\n' "$(curl -s -o /dev/null --max-time 6 -w '%{http_code}' 127.0.0.1:18080/api/status)"
done
kill $gw $up
