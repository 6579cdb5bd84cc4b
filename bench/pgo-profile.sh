#!/usr/bin/env bash
# Writes pgo/fluxgate.profdata, the execution profile that release builds of Fluxgate
# are optimized with (profile-guided optimization, scripts/build-release.sh): LLVM lays
# out the hot paths together, inlines along them and moves the rarely taken branches
# out of the way, in the gateway's modules and SwiftNIO's. On the small-request path
# this took the gateway's user time per request from 6.0-6.9 µs to 4.3-5.0 µs
# (docs/PERFORMANCE.md, "Profile-guided optimization").
#
# 1. builds an instrumented gateway (LLVM IR instrumentation: `-ir-profile-generate`)
#    in its own build folder (.build-pgo), with the release build's other flags;
# 2. runs it (`workers: 1`, CPU 1) behind one nginx worker (CPU 0) under wrk (CPU 0)
#    for the traffic the benchmarks measure and operators run: small GETs at 64, 256
#    and 2 000 connections, 6.6 KB POSTs, 1 MiB responses, a rate-limited phase (sheds)
#    and one with the access log on;
# 3. merges the counters (`llvm-profdata merge --sparse`: functions never run carry no
#    profile, so LLVM optimizes them as it would without one, rather than as cold code).
#
# Run it after changing the data path: a function whose code changed since the profile
# was taken is compiled without its profile (the compiler says nothing; the build script
# counts the files changed since the commit in pgo/recorded-at, which this script
# writes), so a stale profile costs speed, never correctness. Needs nginx-light and wrk (apt).
# Env: DUR (10: seconds of the main phase; the others are shorter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
profdata=$(dirname "$(readlink -f "$(command -v swift)")")/llvm-profdata
[ -x "$profdata" ] || { echo "llvm-profdata is not beside swift ($profdata)" >&2; exit 1; }
bench_ports_free 19861 19862 19863 18861 20861 18862 20862 18863 20863
bench_raise_descriptors
W=$(mktemp -d -t pgo.XXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

echo "== instrumented build (.build-pgo)"
# The release build's script, without the old profile or LTO, plus the instrumentation:
# -ir-profile-generate is a frontend flag (the driver drops it); the profile runtime
# comes with clang's -fprofile-generate at link time.
FLUXGATE_PGO=off FLUXGATE_LTO=off bash scripts/build-release.sh --scratch-path .build-pgo --product fluxgate \
  -Xswiftc -Xfrontend -Xswiftc -ir-profile-generate \
  -Xswiftc -Xclang-linker -Xswiftc -fprofile-generate >"$W/build.log" 2>&1 || { tail -30 "$W/build.log"; exit 1; }
GEN=$PWD/.build-pgo/release/fluxgate

bench_echo_payload
head -c 1048576 /dev/urandom >"$W/mib"
chmod 644 "$W/mib"
bench_nginx_upstream_conf 19861 19862 19863
taskset -c 0 nginx -c "$W/upstream.conf" -e "$W/upstream.err" & pids+=($!)
bench_wait upstream 19861

# One gateway process per configuration; each writes its own counters when it stops.
gateway() {  # PORT EXTRA_YAML
  cat >"$W/$1.yaml" <<C
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(( $1 + 2000 ))"
workers: 1
upstreams:
  - { url: "http://127.0.0.1:19861", max_concurrency: 90000 }
  - { url: "http://127.0.0.1:19862", max_concurrency: 90000 }
  - { url: "http://127.0.0.1:19863", max_concurrency: 90000 }
demo: { enabled: false }
$BENCH_FLUXGATE_LIMITS
$2
C
  LLVM_PROFILE_FILE="$W/fluxgate-%p.profraw" taskset -c 1 "$GEN" --config "$W/$1.yaml" >"$W/$1.log" 2>&1 &
  gateway_pid=$!
  bench_wait fluxgate "$1"
}
load() {  # CONNECTIONS SECONDS PATH [wrk args]
  local c=$1 d=$2 url="http://127.0.0.1:$port$3"; shift 3
  printf '  %-60s' "wrk -c$c -d${d}s $url $*"
  taskset -c 0 wrk -t1 -c"$c" -d"${d}s" "$@" "$url" | awk '/Requests\/sec/ {print $2 " requests/s"}'
}
stop() { kill -TERM "$gateway_pid"; wait "$gateway_pid" || true; }

echo "== training (instrumented: rates are not the product's)"
port=18861; gateway $port "rate_limit: { global: { enabled: false }, per_client: { enabled: false } }"
load 64 "$DUR" /health
load 256 $((DUR / 2)) /health
load 2000 $((DUR / 2)) /health
load 64 $((DUR / 2)) /api/echo -s "$W/echo.lua"
load 16 $((DUR / 2)) /mib
stop
port=18862; gateway $port "rate_limit: { global: { rate: 2000, burst: 100 }, per_client: { enabled: false } }"
load 64 $((DUR / 2)) /health
stop
port=18863; gateway $port "rate_limit: { global: { enabled: false }, per_client: { enabled: true, rate: 100000, burst: 100000 } }
access_log: { enabled: true, format: json, path: \"$W/access.log\" }"
load 64 $((DUR / 2)) /health
stop

mkdir -p pgo
"$profdata" merge --sparse -o pgo/fluxgate.profdata "$W"/fluxgate-*.profraw
# The commit whose sources were profiled (scripts/build-release.sh counts the Swift files
# changed since and says so); uncommitted changes under Sources/ make it approximate.
git rev-parse HEAD >pgo/recorded-at
git diff --quiet HEAD -- Sources Package.swift || echo "note: Sources/ has uncommitted changes: pgo/recorded-at names HEAD, commit the profile with them" >&2
echo "== pgo/fluxgate.profdata: $(du -k pgo/fluxgate.profdata | cut -f1) KiB from $(ls "$W"/fluxgate-*.profraw | wc -l) processes"
"$profdata" show pgo/fluxgate.profdata | sed -n '1,8p'
