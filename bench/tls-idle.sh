#!/usr/bin/env bash
# Memory per idle TLS keep-alive connection after what it carried (a measurement, not a
# test): Fluxgate (`workers: 1`) terminating TLS (a P-256 certificate made here) in front
# of bench/tls_idle.py's upstream; for each case a fresh gateway, N connections that each
# download SIZE bytes, upload SIZE bytes, or exchange a few bytes, then stay idle 10 s;
# the gateway's resident-set growth per connection. TLS connections are never parked.
# Env: N (500), SIZE (200000), FLUXGATE_BIN (another build). Needs openssl (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-500}; SIZE=${SIZE:-200000}
bench_ports_free 19796 18796
bench_setup tlsidle
bench_tls_certificate
bench_fluxgate_config 18796 19796 "" "tls: { certificate: \"$W/cert.pem\", key: \"$W/key.pem\" }" >"$W/fluxgate.yaml"
python3 bench/tls_idle.py upstream 19796 & pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/19796) 2>/dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores; $N idle TLS keep-alive connections after one exchange each; $BIN"
for case in "get $SIZE" "post $SIZE" "get 100"; do
  "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pid=$!; pids+=("$pid")
  for _ in $(seq 50); do curl -skf -o /dev/null "https://127.0.0.1:18796/x" && break; sleep 0.1; done
  read -r mode size <<<"$case"
  python3 bench/tls_idle.py client 18796 "$N" "$mode" "$size" "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
