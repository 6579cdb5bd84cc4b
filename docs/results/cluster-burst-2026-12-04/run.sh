#!/usr/bin/env bash
# A burst on an idle cluster-mode replica: one gateway alone in a cluster (Redis on
# 127.0.0.1:19379), one demo upstream answering in 200 ms, max_concurrency 30 → S = 20,
# of which an idle replica holds 12 (the rest is headroom for a replica that joins).
# Then `hey -c 20 -z 3s`: 20 clients at once, each sending again as soon as answered.
# Prints hey's status codes and the gateway's shed and renewal counters.
# BIN: the fluxgate binary (.build/release/fluxgate).
set -u
BIN=$(realpath "${BIN:-.build/release/fluxgate}")
W=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$W"' EXIT
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:18971"
admin_listen: "127.0.0.1:18972"
workers: 1
demo: { enabled: false }
upstreams: [{ url: "http://127.0.0.1:19971", max_concurrency: 30 }]
rate_limit: { global: { enabled: false } }
cluster: { redis_url: "redis://127.0.0.1:19379", replica_id: gw1, key_prefix: burst }
C
redis-server --port 19379 --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 & pids+=($!)
"$BIN" demo-upstream --port 19971 --instance a --workers 1 --latency-ms 200 >"$W/demo.log" 2>&1 & pids+=($!)
sleep 0.5
"$BIN" --config "$W/gw.yaml" >"$W/gw.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18972/readyz && break; sleep 0.1; done
sleep 1  # idle: the replica's share settles at what it holds idle
echo "idle share: $(curl -s http://127.0.0.1:18972/metrics | awk '/^fluxgate_cluster_share_slots /{print $2}') of S = $(curl -s http://127.0.0.1:18972/metrics | awk '/^fluxgate_cluster_slots /{print $2}')"
hey -c 20 -z 3s http://127.0.0.1:18971/health | grep -A3 "Status code distribution"
curl -s http://127.0.0.1:18972/metrics | grep -E '^fluxgate_shed_total\{reason="overloaded",mode="enforced"\}|^fluxgate_cluster_early_renewals_total|^fluxgate_cluster_syncs_total\{result="ok"\}|^fluxgate_cluster_share_slots '
