#!/usr/bin/env bash
# The release build of Fluxgate, as every figure in docs/PERFORMANCE.md was measured
# and as the Dockerfile and the load-test scripts build it:
#
#   bash scripts/build-release.sh [swift build arguments...]   # e.g. --product fluxgate
#
# - `-enforce-exclusivity=unchecked` for the dependencies too (our own targets drop the
#   dynamic exclusivity checks in Package.swift; static checks remain): ~3-5 % of the
#   small-request path;
# - profile-guided optimization with pgo/fluxgate.profdata (LLVM IR profile, written by
#   `bash bench/pgo-profile.sh`), for every Swift module — the gateway's own and SwiftNIO's:
#   the hot paths laid out together, inlined along, the rare branches moved aside.
#   On this project's 2-core VM it took the user time per proxied small request from
#   6.0-6.9 µs to 4.3-5.0 µs (docs/PERFORMANCE.md, "Profile-guided optimization").
#   A function changed since the profile was taken is compiled as without one: a stale
#   profile costs speed, never correctness. FLUXGATE_PGO=off builds without it;
# - lexical lifetimes off (`-Xfrontend -enable-lexical-lifetimes=false`, every module):
#   the optimizer may end an object's life at its last use instead of at the end of the
#   variable's scope, as Swift did before 5.7 and as the standard library itself is
#   built (its interface says `-enable-lexical-lifetimes=false`). 21 retains and 23
#   releases fewer per proxied request, almost all in SwiftNIO; in two A/Bs user time
#   −0.02 and −0.14 µs per small request, requests/s +2.1 and +2.6 % (docs/PERFORMANCE.md,
#   "Lexical lifetimes off").
#   The price: code that keeps a resource open only through a local object it no longer
#   uses (a `Pipe` whose descriptor number is all that is used afterwards) may see it
#   closed early — `withExtendedLifetime` keeps such objects; `bash scripts/test-release.sh`
#   runs the whole test suite built this way (CI does). FLUXGATE_LEXICAL=on builds with them;
# - link-time optimization (LLVM ThinLTO, SwiftPM's `--experimental-lto-mode=thin`):
#   inlining and dead-code removal across modules at link time — on top of the profile,
#   user time per small request 4.5-4.8 → 3.8-4.5 µs (docs/PERFORMANCE.md). The link
#   then needs ~7.6 GB of memory (measured; FLUXGATE_LTO=off on smaller machines), and
#   with `--static-swift-stdlib` ~18 GB (the static Swift runtime goes through LTO
#   too), so static builds — the Docker image's — leave it out.
#
# SwiftPM does not recompile when only a profile's contents change, so when the profile
# or the LTO mode differs from what the existing release objects were built with (a
# stamp in the scratch folder), the release objects are removed first and everything
# is rebuilt (~7 minutes on 2 cores).
set -euo pipefail
USAGE_ARGS=any; source "$(dirname "$0")/usage.sh"  # --help; the rest go to swift build
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=.build
args=("$@")
lto=${FLUXGATE_LTO:-on}
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = --scratch-path ] && scratch=${args[$((i + 1))]}
  [ "${args[$i]}" = --static-swift-stdlib ] && lto=off
done
flags=(-Xswiftc -enforce-exclusivity=unchecked)
[ "${FLUXGATE_LEXICAL:-off}" = on ] || flags+=(-Xswiftc -Xfrontend -Xswiftc -enable-lexical-lifetimes=false)
profile=$root/pgo/fluxgate.profdata
stamp_value=none
if [ "${FLUXGATE_PGO:-on}" != off ] && [ -f "$profile" ]; then
  # -ir-profile-use is a frontend flag (the driver does not forward it).
  flags+=(-Xswiftc -Xfrontend -Xswiftc "-ir-profile-use=$profile")
  stamp_value=$(cksum <"$profile")
  # A stale profile builds without a word from the compiler: say how stale it is.
  recorded=$(cat pgo/recorded-at 2>/dev/null || true)
  if [ -n "$recorded" ] && git cat-file -e "$recorded^{commit}" 2>/dev/null; then
    changed=$(git diff --name-only "$recorded" -- Sources | grep -c '\.swift$' || true)
    [ "$changed" = 0 ] || echo "note: $changed Swift files under Sources/ changed since pgo/fluxgate.profdata was recorded (at ${recorded:0:7}); their changed functions build without the profile — refresh it with bash bench/pgo-profile.sh" >&2
  fi
fi
# The ThinLTO link maps every module's objects and bitcode at once: since the listener's
# mutual TLS brought swift-certificates in (2026-12-07) it needs more memory maps than
# Linux's default vm.max_map_count (65 530) allows, and fails with "cannot open
# libswiftCore.so: Cannot allocate memory" although memory is free (measured: 1.3 GB in
# use at the failure). Raised when we may (as for Elasticsearch), else built without LTO.
want_maps=262144
if [ "$lto" != off ] && [ "$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo "$want_maps")" -lt "$want_maps" ]; then
  if ! sysctl -qw "vm.max_map_count=$want_maps" 2>/dev/null && ! { [ -n "$(command -v sudo)" ] && sudo -n sysctl -qw "vm.max_map_count=$want_maps" 2>/dev/null; }; then
    echo "note: vm.max_map_count is $(cat /proc/sys/vm/max_map_count) and cannot be raised here (sysctl -w vm.max_map_count=$want_maps as root); building without link-time optimization (slower: docs/PERFORMANCE.md)" >&2
    lto=off
  fi
fi
if [ "$lto" != off ]; then
  flags+=(--experimental-lto-mode=thin)
  stamp_value="$stamp_value lto"
fi
stamp=$scratch/release-profile.stamp
if [ -d "$scratch" ] && [ "$(cat "$stamp" 2>/dev/null || echo absent)" != "$stamp_value" ]; then
  # Objects built with another profile (or none): SwiftPM would keep them.
  rm -rf "$scratch"/*-*-*/release "$scratch"/release "$scratch"/release.yaml "$scratch"/build.db
fi
# swift build prints its diagnostics on standard output, which the load-test and bench
# scripts send to /dev/null: a failed build also says why on standard error (until
# 2026-12-07 `loadtest/run.sh` exited 1 without a word when the build failed).
log=$(mktemp)
if ! swift build -c release "${flags[@]}" "$@" | tee "$log"; then
  {
    echo "scripts/build-release.sh: the release build failed:"
    grep -E "error:" "$log" | head -20 || tail -20 "$log"
  } >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
mkdir -p "$scratch"
echo "$stamp_value" >"$stamp"
