#!/usr/bin/env python3
"""RSS, descriptors and connections over time from bench/soak.sh's samples.tsv."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])][1:]
rows = [r for r in rows if r[1]]
t = [int(r[0]) / 60 for r in rows]
rss = [int(r[1]) / 1024 for r in rows]
fds = [int(r[2]) for r in rows]
clients = [int(r[3]) for r in rows]
upstreams = [int(r[4]) for r in rows]

fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
top.plot(t, rss, color="tab:blue")
top.set_ylabel("gateway RSS (MiB)")
top.set_ylim(bottom=0)
top.grid(alpha=0.3)
top.set_title("bench/soak.sh: release gateway, one event loop, rotating traffic mix")
bottom.plot(t, fds, label="open descriptors", color="tab:red")
bottom.plot(t, clients, label="client connections", color="tab:green", alpha=0.6)
bottom.plot(t, upstreams, label="upstream connections", color="tab:purple", alpha=0.6)
bottom.set_ylabel("count")
bottom.set_xlabel("minutes")
bottom.grid(alpha=0.3)
bottom.legend(loc="upper right")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
