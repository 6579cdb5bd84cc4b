#!/usr/bin/env python3
"""Plots one run from sample.py's CSV: offered vs admitted vs shed per second with
utilization against the 0.67 target, and the gateway's latency percentiles over time
with client connections and CPU. Usage: plot.py samples.csv OUT.png TITLE"""
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = list(csv.DictReader(open(sys.argv[1])))
if len(rows) < 3:
    sys.exit("too few samples to plot")
num = lambda r, k: float(r[k]) if r[k] not in ("", "None") else float("nan")
t = [num(r, "t") for r in rows[1:]]
def rate(key):
    return [(num(b, key) - num(a, key)) / max(1e-9, num(b, "t") - num(a, "t")) for a, b in zip(rows, rows[1:])]
offered, proxied, shed = rate("requests"), rate("proxied"), rate("shed")
reasons = [k for k in rows[0] if k.startswith("shed_") and any(num(r, k) for r in rows)]
fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 11), sharex=True)
top.plot(t, offered, label="offered (ended/s)", color="black", linewidth=1)
top.plot(t, proxied, label="admitted and proxied/s", color="tab:green", linewidth=1)
for key in reasons:
    top.plot(t, rate(key), label=f"shed {key[5:]}/s", linewidth=1)
top.set_ylabel("requests/s")
top.legend(loc="upper left", fontsize=8)
util = top.twinx()
util.plot(t, [num(r, "utilization") for r in rows[1:]], color="tab:purple", linewidth=1, label="utilization")
util.axhline(0.67, color="tab:purple", linestyle="--", linewidth=0.8, label="target 0.67")
util.set_ylim(0, 1.05)
util.set_ylabel("utilization (in-flight + queued) / C")
util.legend(loc="upper right", fontsize=8)
top.set_title(sys.argv[3])
for key, label in [("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")]:
    middle.plot(t, [num(r, key) for r in rows[1:]], label=label, linewidth=1)
middle.set_ylabel("gateway latency, ms\n(every request, last 10-20 s)")
middle.set_yscale("symlog", linthresh=1)
middle.legend(loc="upper left", fontsize=8)
bottom.plot(t, [num(r, "client_connections") for r in rows[1:]], label="client connections (~ virtual users)", color="tab:blue", linewidth=1)
bottom.set_ylabel("connections")
bottom.set_xlabel("seconds")
cpu = bottom.twinx()
for who, color in [("gw", "tab:red"), ("k6", "tab:orange")]:
    c = rate(f"{who}_cpu_s")
    if any(x == x for x in c):
        cpu.plot(t, [x * 100 for x in c], color=color, linewidth=1, label=f"{'gateway' if who == 'gw' else 'k6'} CPU %")
cpu.set_ylabel("CPU % (200 = both cores)")
cpu.legend(loc="upper right", fontsize=8)
bottom.legend(loc="upper left", fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
print(f"plot: {sys.argv[2]}")
