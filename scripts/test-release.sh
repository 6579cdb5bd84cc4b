#!/usr/bin/env bash
# The whole test suite built the way scripts/build-release.sh builds the product:
# optimized, exclusivity checks off, lexical lifetimes off (every module) and the
# profile — without ThinLTO, whose link would need several GB more. CI's end-to-end
# scripts run a build without it too; ThinLTO's cross-module inlining can move where an
# object's last use falls, so the ThinLTO binary itself is exercised by the bench runs
# by hand. `swift test` (the README's test command) builds for debugging, where an
# object lives to the end of its variable's scope whatever the flags; here the optimizer
# may end it at its last use, so this run is what shows code that holds a resource only
# through an object it no longer uses (found on 2026-12-06: two tests read a config
# through `/dev/fd/N` of a `Pipe` they had stopped using, and the pipe was closed
# first). ~6-7 minutes on 2 cores; its own scratch folder.
#
#   bash scripts/test-release.sh [swift test arguments...]   # e.g. --filter ProxyEndToEndTests
set -euo pipefail
USAGE_ARGS=any; source "$(dirname "$0")/usage.sh"  # --help; the rest go to swift test
cd "$(dirname "$0")/.."
scratch=.build-release-tests
FLUXGATE_LTO=off bash scripts/build-release.sh --build-tests --scratch-path "$scratch" -Xswiftc -enable-testing
swift test -c release --scratch-path "$scratch" --skip-build "$@"
