#!/usr/bin/env bash
# Checks the Grafana dashboard against real data (a test with a verdict): the
# embedded default (three demo upstreams) with a global rate limit that sheds part of
# the load, a real Prometheus (Debian's package) scraping the admin listener every
# second with deploy/prometheus/prometheus.yml's job, DURATION seconds of load with
# hey, a demo upstream taken down and back mid-run; then every panel query of
# deploy/grafana/make_dashboard.py is evaluated through Prometheus's HTTP API and
# must return data; every alerting rule of deploy/prometheus/alerts.yml must evaluate
# and read only series the gateway exports, and the two alerts the run provokes must be
# seen pending (demo-b down, the rate limit's 429s). With PLOT=FILE it also draws each
# panel over the run (matplotlib) — a preview, since Grafana itself is not packaged for
# Debian.
# Env: DURATION (40), PLOT (unset).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-40}
command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
bench_need hey "apt-get install -y hey"
bench_ports_free 18951 20951 19951 19952 19953 19190
bench_setup dashboard
cat >"$W/gw.yaml" <<C
listen: "127.0.0.1:18951"
admin_listen: "127.0.0.1:20951"
reload: { watch: false }
health_check: { interval: 1s, timeout: 500ms, rise: 1, fall: 1 }
rate_limit: { global: { rate: 1500, burst: 200 } }
demo: { base_port: 19951 }
C
# With redis-server installed the gateway runs in cluster mode (a one-replica cluster)
# so the cluster panel is checked too; without it that panel is skipped.
CLUSTER=0
if command -v redis-server >/dev/null; then
  bench_ports_free 19179
  redis-server --port 19179 --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 & pids+=($!)
  echo 'cluster: { redis_url: "redis://127.0.0.1:19179", key_prefix: dashboard }' >>"$W/gw.yaml"
  CLUSTER=1
fi
"$BIN" --config "$W/gw.yaml" >"$W/gw.out" 2>"$W/gw.err" & pids+=($!)
bench_wait gateway 18951
sed -e 's/_interval: 5s/_interval: 1s/' -e 's/127.0.0.1:9090/127.0.0.1:20951/' deploy/prometheus/prometheus.yml >"$W/prometheus.yml"
cp deploy/prometheus/alerts.yml "$W/alerts.yml"
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" --web.listen-address=127.0.0.1:19190 >"$W/prom.log" 2>&1 & pids+=($!)
bench_wait prometheus 19190 /-/ready
start=$(date +%s)
hey -z "${DURATION}s" -c 32 -q 100 "http://127.0.0.1:18951/health" >"$W/hey.txt" & load=$!
# One 200 KB upload a second: over limits.request_buffer_bytes, so each is spooled
# (the spool panels); sheds of them are fine, they are spooled before admission.
python3 -c 'import json; print(json.dumps({"pad": "x" * 200000}))' >"$W/big.json"
(for _ in $(seq "$DURATION"); do
  curl -s -o /dev/null -H 'content-type: application/json' --data-binary @"$W/big.json" http://127.0.0.1:18951/api/echo || true
  sleep 1
done) & uploads=$!
sleep $((DURATION / 3))
curl -s -X POST "http://127.0.0.1:19952/admin/health/fail" >/dev/null   # demo-b fails its checks...
sleep $((DURATION / 3))
curl -s -X POST "http://127.0.0.1:19952/admin/health/recover" >/dev/null  # ...and recovers
wait "$load" "$uploads"
sleep 3
CLUSTER=$CLUSTER python3 - "$start" "$(date +%s)" "${PLOT:-}" <<'PY'
import json, os, sys, urllib.parse, urllib.request
sys.path.insert(0, "deploy/grafana")
from make_dashboard import PANELS
start, end, plot = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def query(expr):
    expr = expr.replace('$instance', '.*').replace('$__rate_interval', '5s')
    url = "http://127.0.0.1:19190/api/v1/query_range?" + urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
    return json.load(urllib.request.urlopen(url))["data"]["result"]
failed, series = 0, []
for title, _, targets, _, _ in PANELS:
    if title.startswith("Cluster") and os.environ.get("CLUSTER") != "1":
        print(f"skip              {title}: no redis-server here, the gateway is not in cluster mode")
        continue
    for expr, legend in targets:
        result = query(expr)
        points = sum(len(r["values"]) for r in result)
        print(f"{'ok ' if points else 'EMPTY'} {points:5} points  {title}: {legend}")
        failed += points == 0
        series.append((title, legend, result))
if plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = (len(PANELS) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(18, 4 * rows))
    for ax, (title, unit, targets, _, _) in zip(axes.flat, PANELS):
        for t, legend, result in series:
            if t != title: continue
            for r in result:
                label = legend
                for k, v in r["metric"].items(): label = label.replace("{{" + k + "}}", v)
                xs = [float(v[0]) - start for v in r["values"]]
                ys = [float(v[1]) if v[1] not in ("NaN", "+Inf") else float("nan") for v in r["values"]]
                ax.plot(xs, ys, label=label, linewidth=1)
        ax.set_title(title, fontsize=10); ax.set_xlabel("s"); ax.legend(fontsize=6); ax.set_ylabel(unit, fontsize=8)
    for ax in list(axes.flat)[len(PANELS):]: ax.axis("off")
    fig.suptitle("deploy/grafana/fluxgate.json panels, drawn from Prometheus (deploy/check-dashboard.sh)")
    fig.tight_layout(rect=(0, 0, 1, 0.98)); fig.savefig(plot, dpi=80)
    print(f"preview: {plot}")
# The alerting rules (deploy/prometheus/alerts.yml, loaded through prometheus.yml's
# rule_files): each evaluated without error, each series it reads present in the
# scraped data (a misspelt name would leave a rule that can never fire), and the two
# the run provokes seen pending or firing: demo-b's failed checks and the global rate
# limit's 429s.
import re
def api(path):
    return json.load(urllib.request.urlopen("http://127.0.0.1:19190/api/v1/" + path))["data"]
names = set(api("label/__name__/values"))
rules = [r for g in api("rules")["groups"] for r in g["rules"]]
for rule in rules:
    read = sorted(set(re.findall(r"\b(?:fluxgate|process)_\w+|\bup\b", rule["query"])))
    if not os.environ.get("CLUSTER") == "1":
        read = [n for n in read if not n.startswith("fluxgate_cluster_")]
    # This gateway runs without TLS, so the certificate's series does not exist here;
    # its rule is covered by deploy/prometheus/test_alerts.py and the TLS tests.
    read = [n for n in read if not n.startswith("fluxgate_tls_")]
    absent = [n for n in read if n not in names]
    ok = rule["health"] == "ok" and not absent
    print(f"{'ok ' if ok else 'BAD'}   rule {rule['name']}: {rule['health']}{', ' + rule.get('lastError', '') if rule.get('lastError') else ''}"
          + (f", reads series never scraped: {', '.join(absent)}" if absent else ""))
    failed += not ok
failed += len(rules) == 0
def raised(alert, **labels):
    selector = ",".join([f'alertname="{alert}"'] + [f'{k}="{v}"' for k, v in labels.items()])
    states = {r["metric"]["alertstate"] for r in query("ALERTS{" + selector + "}")}
    print(f"{'ok ' if states else 'BAD'}   alert {alert} {labels or ''}: {', '.join(sorted(states)) or 'never pending'} during the run")
    return bool(states)
failed += not raised("FluxgateUpstreamDown", upstream="demo-b")
failed += not raised("FluxgateRateLimiting")
print("verdict:", "PASS" if failed == 0 else f"FAIL ({failed} failed checks)")
sys.exit(1 if failed else 0)
PY
