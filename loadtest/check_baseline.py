#!/usr/bin/env python3
"""Compares a run's k6 summary with the committed baseline and fails on a regression.

Usage: check_baseline.py SUMMARY_JSON BASELINE_JSON TEST
The baseline (loadtest/baseline.json) holds, per test, the figures to hold and a
tolerance: `min_rate` (requests/s may fall to rate x (1 - tolerance)), `max_p95_ms`
(admitted p95 may rise to p95 x (1 + tolerance)), `max_real_failure_rate` (absolute).
Prints one line per figure and exits 1 when any is beyond its bound."""
import json, sys

summary, baseline, test = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
base = baseline[test]
tolerance = baseline.get("tolerance", 0.25)
m = summary["metrics"]
rate = m["http_reqs"]["rate"]
p95 = m["admitted_duration"]["p(95)"]
failures = m["real_failures"]["value"]
checks = [
    ("requests/s", rate, base["min_rate"] * (1 - tolerance), lambda v, b: v >= b, ">="),
    ("admitted p95 ms", p95, base["max_p95_ms"] * (1 + tolerance), lambda v, b: v <= b, "<="),
    ("real failure rate", failures, base["max_real_failure_rate"], lambda v, b: v <= b, "<="),
]
failed = False
for name, value, bound, ok, op in checks:
    good = ok(value, bound)
    failed |= not good
    print(f"{'ok ' if good else 'REGRESSION'} {name}: {value:.4g} (bound {op} {bound:.4g}, tolerance {tolerance:.0%})")
sys.exit(1 if failed else 0)
