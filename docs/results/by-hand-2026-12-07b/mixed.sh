#!/usr/bin/env bash
# Release build under mixed traffic with timeouts.request: 1s (60 s): wrk -c40 on /hold (the
# upstream answers after 5 s: cut at the cap with 504, or queued past S = 20 and shed 503
# queue_timeout), wrk -c20 on /x (answered at once), 10 clients trickling a byte a second into
# 100-byte uploads (408 at the cap), over and over. RSS and open descriptors every 10 s, and after.
BIN=$1
# The upstream and the trickling clients are the scripts beside this one.
HERE=$(cd "$(dirname "$0")" && pwd)
cat > /tmp/gwm.yaml <<'YAML'
listen: 127.0.0.1:18911
admin_listen: 127.0.0.1:18912
workers: 1
health_check: {enabled: false, passive: {enabled: false}}
retry: {enabled: false}
admission: {target_utilization: 0.5, queue_timeout: 10s}
rate_limit: {global: {enabled: false}}
timeouts: {request: 1s}
upstreams:
  - {name: slow, url: "http://127.0.0.1:19911", max_concurrency: 40}
YAML
python3 "$HERE/slowup.py" & up=$!
$BIN --config /tmp/gwm.yaml > /tmp/gwm.log 2>&1 & gw=$!
sleep 2
sample() { echo "$1 rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$gw/status) fds=$(ls /proc/$gw/fd | wc -l)"; }
sample "start"
python3 "$HERE/trickle_loop.py" & tr=$!
wrk -t1 -c40 -d60s http://127.0.0.1:18911/hold > /tmp/wrk-hold.txt 2>&1 &
wrk -t1 -c20 -d60s http://127.0.0.1:18911/x > /tmp/wrk-x.txt 2>&1 &
for t in 10 20 30 40 50 60; do sleep 10; sample "t=${t}s"; done
wait $tr; sleep 3
sample "after (load gone)"
echo "== wrk /hold"; grep -E "requests in|Non-2xx|Socket errors" /tmp/wrk-hold.txt
echo "== wrk /x"; grep -E "requests in|Non-2xx|Socket errors|Requests/sec" /tmp/wrk-x.txt
echo "== gateway: requests by status and sheds"
curl -s 127.0.0.1:18912/metrics | grep -E '^fluxgate_(requests_total|shed_total|timeouts_total)' | grep -v ' 0$'
kill $gw; wait $gw; echo "gateway exit $?"; kill $up
