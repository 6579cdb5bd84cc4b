#!/usr/bin/env python3
"""Summarises the slow requests of a Fluxgate access log (logfmt): how many took longer
than THRESHOLD_MS (default 1000), grouped by outcome, status, upstream and method, their
durations and queue waits, and when they ended (per 10 s).
Usage: slow_requests.py ACCESS_LOG [THRESHOLD_MS]"""
import collections, re, sys

path = sys.argv[1]
threshold = float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0
field = re.compile(r'(\w+)=("[^"]*"|\S+)')
total, slow = 0, []
for line in open(path, errors="replace"):
    total += 1
    f = dict(field.findall(line))
    if float(f.get("duration_ms", "0")) > threshold:
        slow.append(f)
print(f"{len(slow)} of {total} logged requests took over {threshold:g} ms")
if not slow:
    sys.exit(0)
groups = collections.Counter((f.get("outcome"), f.get("status"), f.get("upstream"), f.get("method")) for f in slow)
print("\nby outcome, status, upstream, method:")
for key, count in groups.most_common():
    print(f"  {count:7d}  {' '.join(str(k) for k in key)}")
def percentiles(values):
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"min {values[0]:.1f}  p50 {pick(0.5):.1f}  p90 {pick(0.9):.1f}  max {values[-1]:.1f} ms"
print("\nduration:   " + percentiles([float(f["duration_ms"]) for f in slow]))
print("queue wait: " + percentiles([float(f.get("queue_wait_ms", "0")) for f in slow]))
print("\nended (UTC, per 10 s):")
for second, count in sorted(collections.Counter(f["time"][11:18] + "0" for f in slow).items()):
    print(f"  {second}  {count}")
