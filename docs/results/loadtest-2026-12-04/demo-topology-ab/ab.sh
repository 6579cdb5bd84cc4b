#!/usr/bin/env bash
# The stress test with the demo upstreams embedded in the gateway or as processes of
# their own (MODE=embedded|external), the gateway's descriptor limit FD, cap 90 % of it,
# the access log sampling 20 %; the listen queues and the gateway's descriptors every
# second (queues.txt: unix time, descriptors, Recv-Q per listener), nstat at the end.
# Run on 2026-12-04 from the repository root with the release build of 4c3a2ba's parent
# (fc82280):  FD=20000 SCALE=1 TIME_SCALE=1 bash docs/results/loadtest-2026-12-04/demo-topology-ab/ab.sh embedded
# (and external). Results in /tmp/ab/<mode>-<time>/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
mode=$1; FD=${FD:-2000}; out=/tmp/ab/$mode-$(date +%H%M%S); mkdir -p $out
cd "$here/../../../.."
pids=()
if [ $mode = external ]; then
  for i in 1 2 3; do ./.build/release/fluxgate demo-upstream --port 900$i --instance $(echo abc | cut -c$i) >/dev/null 2>&1 & pids+=($!); done
  sleep 1
  cp $here/external.conf $out/gateway.conf
else
  printf 'listen: "127.0.0.1:8080"\nadmin_listen: "127.0.0.1:9090"\nreload: { watch: false }\n' > $out/gateway.conf
fi
printf 'limits: { max_connections: %d }\naccess_log: { enabled: true, path: "%s/access.log", sample: 0.2 }\n' $((FD/10*9)) $out >> $out/gateway.conf
bash -c "ulimit -n $FD; ulimit -Hn $FD; exec ./.build/release/fluxgate --config $out/gateway.conf" >$out/gw.out 2>$out/gw.log & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:9090/readyz && break; sleep 0.1; done
nstat -n >/dev/null  # reset history
( while kill -0 $gw 2>/dev/null; do echo "$(date +%s) $(ls /proc/$gw/fd | wc -l) $(ss -lnt | awk '$4 ~ /:(8080|9001|9002|9003)$/ {printf "%s=%s ", $4, $2}')"; sleep 1; done ) > $out/queues.txt & pids+=($!)
BASE_URL=http://127.0.0.1:8080 ADMIN_URL=http://127.0.0.1:9090 OUT=$out/k6 SCALE=${SCALE:-0.1} TIME_SCALE=${TIME_SCALE:-0.3} bash loadtest/run.sh stress > $out/run.txt 2>&1
nstat -z TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpExtTCPBacklogDrop > $out/nstat.txt
for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null
echo $out
