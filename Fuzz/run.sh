#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the parsers Fluxgate wrote
# itself — RequestHeadParser, ResponseHeadParser and BodyFramer — with llhttp as the oracle
# (Sources/FluxgateFuzz/WireFuzz.swift says what is checked).
# Usage: Fuzz/run.sh [SECONDS per job] (default 300). Env: JOBS (1).
# New interesting inputs go to Fuzz/corpus-work/ (not committed); a failing input is
# written as Fuzz/crash-* and the run stops. Replay any input with a normal build:
#   swift run fluxgate-fuzz Fuzz/corpus Fuzz/crash-…
set -euo pipefail
USAGE_ARGS=any; source "$(dirname "$0")/../scripts/usage.sh"
cd "$(dirname "$0")/.."
SECONDS_PER_JOB=${1:-300}; JOBS=${JOBS:-1}
if [ $# -gt 1 ] || ! [[ $SECONDS_PER_JOB =~ ^[1-9][0-9]*$ && $JOBS =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: Fuzz/run.sh [SECONDS per job, a whole number] (JOBS=N in the environment; --help)" >&2; exit 2
fi
swift build -c release --product fluxgate-fuzz --build-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
mkdir -p Fuzz/corpus-work
cd Fuzz
export SWIFT_BACKTRACE=enable=no  # libFuzzer and ASan report crashes themselves
../.build-fuzz/release/fluxgate-fuzz -max_total_time="$SECONDS_PER_JOB" -max_len=2048 -timeout=10 \
  -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 -artifact_prefix=crash- corpus-work corpus
