#!/usr/bin/env bash
# Failover scenario, unattended (~90 s): three demo upstream processes behind one
# gateway under steady load; one is killed (-9) and restarted, another fails its health
# check, then all do, then all recover; then one hangs (SIGSTOP) and resumes. Prints requests by instance, sheds and client
# errors per phase, and the time from each event to the gateway's flip. The scenario
# itself is bench/failover.py.
#
#   bash bench/failover.sh            # CONNS=32 keep-alive clients
#   BALANCER=least_requests bash bench/failover.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_need curl "apt-get install -y curl"
bench_ports_free 18780 19781 19782 19783  # failover.py's ports
bench_setup failover
python3 bench/failover.py "$BIN" "$W"
