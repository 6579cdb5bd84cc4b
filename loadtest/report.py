#!/usr/bin/env python3
"""Key figures of one or more result folders (loadtest/run.sh), as a Markdown table:
requests and rate, admitted and all-request latency, real failures, sheds by reason,
peak connections, gateway and k6 CPU and RSS.  Usage: report.py RESULT_DIR..."""
import csv, json, os, sys


def trend(metrics, name, stat):
    m = metrics.get(name, {})
    value = m.get(stat)
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def cpu_stats(rows, key):
    pairs = [(float(a["t"]), float(a[key]), float(b["t"]), float(b[key])) for a, b in zip(rows, rows[1:])
             if a[key] not in ("", "None") and b[key] not in ("", "None")]
    rates = [(c1 - c0) / max(1e-9, t1 - t0) * 100 for t0, c0, t1, c1 in pairs]
    return (sum(rates) / len(rates), max(rates)) if rates else (float("nan"), float("nan"))


def gateway_quantiles(folder):
    """p95 / p99 of fluxgate_request_duration_seconds over the whole run (metrics-end.txt),
    interpolated inside buckets as Prometheus's histogram_quantile does; ms."""
    path = os.path.join(folder, "metrics-end.txt")
    if not os.path.exists(path):
        return "-"
    buckets = []
    for line in open(path):
        if line.startswith('fluxgate_request_duration_seconds_bucket{le="'):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    def q(p):
        rank, lower, below = p * total, 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == float("inf"): return lower * 1000
                return (lower + (upper - lower) * (rank - below) / max(1e-9, count - below)) * 1000
            lower, below = upper, count
        return float("nan")
    return f"{q(0.95):.1f} / {q(0.99):.1f}" if total else "-"


print("| run | requests | req/s | admitted p50 / p95 / p99 ms | all p95 ms | gateway p95 / p99 ms | real failures | sheds (by reason) | peak conns | gateway CPU % avg / max | gateway RSS MiB max | k6 CPU % avg / max | k6 RSS MiB max |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for folder in sys.argv[1:]:
    summary = json.load(open(os.path.join(folder, "summary.json")))
    metrics = summary["metrics"]
    reqs = metrics.get("http_reqs", {})
    shed_total = metrics.get("fluxgate_shed", {}).get("count", 0)
    rows = list(csv.DictReader(open(os.path.join(folder, "samples.csv")))) if os.path.exists(os.path.join(folder, "samples.csv")) else []
    reasons = {}
    if rows:
        for key in rows[0]:
            if key.startswith("shed_"):
                n = int(rows[-1][key]) - int(rows[0][key])
                if n: reasons[key[5:]] = n
    gw = cpu_stats(rows, "gw_cpu_s") if rows else (float("nan"),) * 2
    k6 = cpu_stats(rows, "k6_cpu_s") if rows else (float("nan"),) * 2
    peak = max((int(r["client_connections"]) for r in rows), default=0)
    gw_rss = max((float(r["gw_rss_kib"]) for r in rows if r["gw_rss_kib"] not in ("", "None")), default=float("nan")) / 1024
    k6_rss = max((float(r["k6_rss_kib"]) for r in rows if r["k6_rss_kib"] not in ("", "None")), default=float("nan")) / 1024
    failures = metrics.get("real_failures", {})
    fail_text = f"{failures.get('value', 0) * 100:.3f} % ({failures.get('passes', 0)})"
    shed_text = f"{shed_total} ({', '.join(f'{k} {v}' for k, v in reasons.items())})" if shed_total else "0"
    print(f"| {os.path.basename(folder.rstrip('/'))} | {reqs.get('count', 0)} | {reqs.get('rate', 0):.0f} | "
          f"{trend(metrics, 'admitted_duration', 'med')} / {trend(metrics, 'admitted_duration', 'p(95)')} / {trend(metrics, 'admitted_duration', 'p(99)')} | "
          f"{trend(metrics, 'http_req_duration', 'p(95)')} | {gateway_quantiles(folder)} | {fail_text} | {shed_text} | {peak} | "
          f"{gw[0]:.0f} / {gw[1]:.0f} | {gw_rss:.0f} | {k6[0]:.0f} / {k6[1]:.0f} | {k6_rss:.0f} |")
