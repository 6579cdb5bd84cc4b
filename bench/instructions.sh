#!/usr/bin/env bash
# Instructions per proxied request (a measurement, not a test), counted by valgrind's
# callgrind — a figure that does not depend on the machine's speed or load, for the
# slowed and noisy VM on which timed A/B runs cannot see a few percent: one nginx
# upstream, Fluxgate (`workers: 1`) under callgrind, counters zeroed after a warm-up,
# then exactly N `GET /health` requests (`hey -n N -c 64`), then a dump. Prints the
# instructions (Ir) per request of the whole process and the top functions by their
# own instructions per request. Env: N (20000), TOP (25), FLUXGATE_BIN (another build),
# FLUXGATE_YAML (more config). Needs valgrind, nginx-light and hey (apt).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-20000}; TOP=${TOP:-25}
bench_need valgrind "apt-get install -y valgrind"
bench_need nginx "apt-get install -y nginx-light"
bench_need hey "apt-get install -y hey"
bench_ports_free 19797 18797
bench_setup instr
bench_nginx_health_upstream 19797 0
bench_fluxgate_config 18797 19797 "" "${FLUXGATE_YAML:-}" >"$W/fluxgate.yaml"
valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 &
pids+=($!); pid=$!
for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:18797/health" && break; sleep 0.2; done
hey -n 2000 -c 64 "http://127.0.0.1:18797/health" >/dev/null  # warm-up: pools, caches
callgrind_control -z "$pid" >/dev/null
out=$(hey -n "$N" -c 64 "http://127.0.0.1:18797/health")
callgrind_control -d "$pid" >/dev/null
ok=$(awk '/\[200\]/{print $2}' <<<"$out")
dump=$(ls -t "$W"/cg.out.* | head -1)
echo "# $(date -u +%FT%TZ) $(nproc) cores; $N x GET /health (hey -c 64) through $BIN under callgrind; $ok answered 200"
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
python3 -c "import sys; print(f'instructions per request: {int(sys.argv[1]) / int(sys.argv[2]):.0f} (total {int(sys.argv[1]):,})')" "$total" "$N"
echo "top functions, own instructions per request:"
callgrind_annotate --threshold=100 "$dump" 2>/dev/null | awk -v n="$N" -v top="$TOP" '
  /^-+$/ { sep++ ; next }
  sep >= 3 && NF >= 2 && $1 ~ /^[0-9,]+$/ && shown < top {
    ir = $1; gsub(",", "", ir); $1 = ""; sub(/\([^)]*\)$/, ""); printf "%8.0f  %s\n", ir / n, substr($0, 2); shown++ }'
