# Shared set-up for the bench/*.sh scripts (sourced, not run).
# After `bench_setup NAME`: the repository root is the working directory, fluxgate is
# built in release mode as $BIN, $W is a scratch folder, and every pid appended to
# `pids` is killed when the script exits.
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[1]}")/.."
  swift build -c release >/dev/null
  BIN=$PWD/.build/release/fluxgate
  W=$(mktemp -d -t "$1.XXXX")
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
}

# Requires a command, naming the package that brings it.
bench_need() { command -v "$1" >/dev/null || { echo "$1 is missing: $2" >&2; exit 1; }; }
