#!/usr/bin/env bash
# Allocations per request (a measurement, not a test): Fluxgate with a malloc counter
# preloaded (bench/malloc/count.c), in front of one nginx upstream, under
# `wrk -t1 -c64 GET /health` — once proxying, once shedding every request (global
# bucket of 1/s). Warm-up run, then counter read, measured run, counter read:
# mallocs / requests of the measured run. Needs gcc, nginx-light and wrk (apt).
# Env: DUR seconds of the measured run (4).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR=${DUR:-4}
bench_need gcc "apt-get install -y gcc"
bench_need nginx "apt-get install -y nginx-light"
bench_need wrk "apt-get install -y wrk"
bench_setup malloc
gcc -O2 -shared -fPIC -o "$W/count.so" bench/malloc/count.c -ldl
bench_nginx_health_upstream 19701 0
for mode in proxied:18701:"{ enabled: false }" shed:18702:"{ enabled: true, rate: 1, burst: 1 }"; do
  IFS=: read -r name port bucket <<<"$mode"
  cat >"$W/$name.yaml" <<C
listen: "127.0.0.1:$port"
admin_listen: "127.0.0.1:$(( port + 2000 ))"
workers: 1
upstreams: [{ url: "http://127.0.0.1:19701", max_concurrency: 30000 }]
rate_limit: { global: $bucket, per_client: { enabled: false } }
demo: { enabled: false }
C
  LD_PRELOAD="$W/count.so" taskset -c 1 "$BIN" --config "$W/$name.yaml" 2>"$W/$name.err" >/dev/null & pid=$!; pids+=("$pid")
  bench_wait "$name gateway" "$port"
  taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$port/health" >/dev/null
  kill -USR2 "$pid"; sleep 0.3
  requests=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" "http://127.0.0.1:$port/health" | awk '/requests in/{print $1}')
  kill -USR2 "$pid"; sleep 0.3
  python3 - "$W/$name.err" "$requests" "$name" <<'PY'
import re, sys
counts = [int(n) for n in re.findall(r"mallocs=(\d+)", open(sys.argv[1]).read())]
print(f"{sys.argv[3]:8} {int(sys.argv[2]):9} requests  {(counts[-1] - counts[-2]) / int(sys.argv[2]):6.2f} allocations per request")
PY
done
