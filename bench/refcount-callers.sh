#!/usr/bin/env bash
# Who calls swift_retain and swift_release, per proxied request (a measurement, not a
# test): Fluxgate (`workers: 1`) in front of one nginx worker, `GET /health` from 64
# keep-alive connections; `perf record` takes every call of the two (uprobes, first
# argument = the object: a null object is counted apart, as NR/NL, it costs next to
# nothing) with its call chain, and each call is charged to its immediate caller.
# Requests are the gateway's own counter over the same window. The load is paced
# (`hey -c 64 -q RATE`, 256 requests/s): the kernel takes at most
# kernel.perf_event_max_sample_rate samples a second (100 000 here, and it cannot be
# raised) and drops the rest unnoticed — at wrk's full pace (~290 calls a request) this
# script saw a fifth of the calls bench/refcount.sh counts. At this pace a wake-up of the
# event loop handles about one request, so NIO's per-wake-up calls weigh more than under
# full load; the gateway's own callers are per request either way. Used on 2026-12-01 by
# hand (docs/results/perf-2026-12-01c/refcount-callers.txt), a script since 2026-12-06.
# Needs perf (apt-get install -y linux-perf), nginx-light and hey; run as root.
# SHED=1 measures sheds: a global bucket of 1/s answers every request 503 (compare.sh's
# shed row); requests are then sheds (the counter counts them too).
# TARGET=relay measures the relay floor (Sources/RelayFloor, bench/user-time.sh) instead: it
# has no counter, so its requests are the paced rate times the window (64 x RATE x DUR).
# Env: LINES=1 charges each gateway call site to its source line (and the lines it was inlined into; needs llvm-symbolizer); DUR (8); RATE (4 requests/s per connection); MIN (0.9: callers below this many calls per request are left out);
# FLUXGATE_BIN measures another build (bench/lib.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-8}
RATE=${RATE:-4}
MIN=${MIN:-0.9}
bench_need perf "apt-get install -y linux-perf"
bench_need nginx "apt-get install -y nginx-light"
bench_need hey "apt-get install -y hey"
bench_ports_free 19791 18792 20792
bench_setup refcount-callers
bench_nginx_health_upstream 19791 0
core=$(ldd "$BIN" | awk '/libswiftCore/ {print $3}')
perf probe -q -d 'probe_libswiftCore:rc_*' 2>/dev/null || true
perf probe -q -x "$core" -a 'rc_retain=swift_retain obj=%di' 2>/dev/null
perf probe -q -x "$core" -a 'rc_release=swift_release obj=%di' 2>/dev/null
if [ "${TARGET:-fluxgate}" = relay ]; then
  bench_relay_floor 18792 19791
  fluxgate_pid=$relay_pid BIN=$PWD/.build/release/fluxgate-relay-floor
  bench_wait upstream 19791; bench_wait relay 18792
else
  bench_fluxgate_config 18792 19791 "$( [ "${SHED:-0}" = 1 ] && echo "$BENCH_SHED_ALL")" >"$W/fluxgate.yaml"
  taskset -c 1 "$BIN" --config "$W/fluxgate.yaml" >"$W/fluxgate.log" 2>&1 & pids+=($!); fluxgate_pid=$!
  bench_wait upstream 19791; bench_wait fluxgate 18792
fi
taskset -c 0 hey -c 64 -z 1s "http://127.0.0.1:18792/health" >/dev/null  # warm
taskset -c 0 hey -c 64 -q "$RATE" -z "$((DUR + 2))s" "http://127.0.0.1:18792/health" >"$W/hey.txt" &
load_pid=$!
sleep 1
# Requests over the recorded window: the gateway's own counter before and after (the
# relay floor's: the paced rate times the window).
served() {
  [ "${TARGET:-fluxgate}" = relay ] && { echo $(( $1 * 64 * RATE * DUR )); return; }
  curl -s "http://127.0.0.1:$((18792 + 2000))/metrics" 2>/dev/null | awk '/^fluxgate_requests_total/ {s += $2} END {print s + 0}'; }
before=$(served 0)
perf record -q -g -c 1 -m 4096 -e probe_libswiftCore:rc_retain,probe_libswiftCore:rc_release -p "$fluxgate_pid" -o "$W/perf.data" -- sleep "$DUR" 2>/dev/null
after=$(served 1)
wait "$load_pid" || true
requests=$((after - before))
what="the gateway's counter"; [ "${TARGET:-fluxgate}" = relay ] && what="the paced rate: the relay floor has no counter"
echo "# $(date -u +%FT%TZ) $(nproc) cores; $( [ "${TARGET:-fluxgate}" = relay ] && echo "the relay floor" || "$BIN" --version 2>/dev/null | head -1); hey -c 64 -q $RATE GET /health; ${DUR}s recorded, $requests requests ($what)"
echo "# calls per request by immediate caller; R retain, L release, NR/NL with a null object; callers >= $MIN per request"
text_delta=$(readelf -lW "$BIN" | awk '$1 == "LOAD" && $8 == "E" {print $3 " " $2; exit}' | python3 -c 'import sys; v, o = sys.stdin.read().split(); print(hex(int(v, 16) - int(o, 16)))')
perf script -i "$W/perf.data" -F event,trace,ip,sym 2>/dev/null | python3 -c '
import sys, collections, re
requests = int(sys.argv[1]); floor = float(sys.argv[2]); lines = sys.argv[3] == "1"
counts = collections.Counter(); totals = collections.Counter()
kind = None; depth = 0; done = False; outlined = []
for line in sys.stdin:
    if not line.strip():
        kind = None; continue
    if kind is None and "rc_re" in line:
        retain = "rc_retain" in line
        null = re.search(r"obj=0x0\b", line) is not None
        kind = ("N" if null else "") + ("R" if retain else "L")
        totals[kind] += 1; depth = 0; done = False; outlined = []; continue
    if kind is not None:
        depth += 1
        if depth >= 2 and not done:  # frame 1 is swift_retain/swift_release itself
            parts = line.strip().split(None, 1)
            symbol = re.sub(r"\+0x[0-9a-f]+$", "", parts[1] if len(parts) > 1 else "?")
            if re.search(r"(WO[a-z]|Vw[a-z]{2})$", symbol) and depth < 6:
                # an outlined copy or destroy of a value (its fields retained or
                # released one by one): charged to the function that copied it
                outlined.append(symbol); continue
            if outlined: symbol += " [" + outlined[0] + "]"
            if lines and "Fluxgate" in symbol: symbol += " @0x" + parts[0]
            counts[(kind, symbol)] += 1; done = True
rows = [(n / max(requests, 1), kind, symbol) for (kind, symbol), n in counts.most_common() if n / max(requests, 1) >= floor]
if lines:
    # The source line (and the lines it was inlined into) of each gateway call site.
    import subprocess
    addresses = sorted({symbol.split(" @")[1] for _, _, symbol in rows if " @0x" in symbol})
    # perf prints file offsets; the symbolizer wants addresses (the text segment is loaded
    # sys.argv[5] bytes above its offset).
    out = subprocess.run(["llvm-symbolizer", "--obj=" + sys.argv[4], "--inlining"] + [hex(int(a, 16) + int(sys.argv[5], 16)) for a in addresses],
                         capture_output=True, text=True).stdout.split("\n\n")
    where = {}
    for address, block in zip(addresses, out):
        places = [l.strip().split("/")[-1] for l in block.strip().split("\n")[1::2]]
        where[address] = " < ".join(places)
    rows = [(per, kind, symbol.split(" @")[0] + " @ " + where.get(symbol.split(" @")[1], "?") if " @0x" in symbol else symbol)
            for per, kind, symbol in rows]
for per, kind, symbol in rows:
    print(f"{per:7.2f} {kind:2s} {symbol}")
print("# totals per request:", {k: round(v / max(requests, 1), 1) for k, v in sorted(totals.items())})
' "$requests" "$MIN" "${LINES:-0}" "$BIN" "$text_delta" | { command -v swift >/dev/null && swift demangle --simplified || cat; }
if [ -n "${KEEP:-}" ]; then cp "$W/perf.data" "$KEEP"; fi  # KEEP=FILE: the recording, for perf report
perf probe -q -d 'probe_libswiftCore:rc_*' 2>/dev/null || true
