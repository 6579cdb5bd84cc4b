#!/usr/bin/env bash
# bash run.sh ROUNDS N: each round a fresh release gateway, N connections parked, a request
# on each, SIGTERM right after the last one is sent; then the same without the drain.
BIN=${BIN:-/work/main/.build/release/fluxgate}
for round in $(seq "$1"); do
  "$BIN" --config gw.yaml > gw-$round.log 2>&1 & gw=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:20771/readyz && break; sleep 0.1; done
  python3 drainpark.py "$2" $gw drain
  wait $gw; echo "gateway exit $?; $(grep -o 'drained.*' gw-$round.log | head -1 | cut -c1-120) $(grep -o 'connections_left=[0-9]* requests_during_drain=[0-9]*' gw-$round.log)"
done
"$BIN" --config gw.yaml > gw-nodrain.log 2>&1 & gw=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:20771/readyz && break; sleep 0.1; done
python3 drainpark.py "$2" $gw nodrain
kill -TERM $gw; wait $gw; echo "gateway exit $?"
