#!/usr/bin/env python3
"""Samples the gateway while a k6 test runs: once a second, the admin /stats (counters,
utilization, latency percentiles of the last 10-20 s) and the CPU and RSS of the
gateway process and of k6 (they share this machine's cores). Writes CSV until
STOP_FILE exists.  Usage: sample.py ADMIN_URL GATEWAY_PID K6_PID_FILE OUT.csv STOP_FILE
(GATEWAY_PID 0 = not ours: no CPU/RSS for it)."""
import csv, json, os, sys, time, urllib.request

admin, gw_pid, k6_pid_file, out, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
hz = os.sysconf("SC_CLK_TCK")


def proc(pid):
    """(cpu seconds, rss KiB) of a process, or (None, None)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
        return (int(fields[11]) + int(fields[12])) / hz, rss
    except (OSError, StopIteration, ValueError):
        return None, None


columns = ["t", "requests", "proxied", "shed", "gateway_answer", "client_gone", "cut_off", "in_flight", "queued",
           "slots", "capacity", "utilization", "p50_ms", "p95_ms", "p99_ms", "client_connections",
           "gw_cpu_s", "gw_rss_kib", "k6_cpu_s", "k6_rss_kib"]
reasons = ["client_rate_limited", "rate_limited", "overloaded", "queue_timeout", "no_healthy_upstream"]
with open(out, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(columns + [f"shed_{r}" for r in reasons])
    start = time.time()
    while not os.path.exists(stop):
        try:
            s = json.load(urllib.request.urlopen(f"{admin}/stats", timeout=2))
        except Exception:
            time.sleep(1)
            continue
        k6_pid = int(open(k6_pid_file).read().strip() or 0) if os.path.exists(k6_pid_file) else 0
        gw = proc(gw_pid) if gw_pid else (None, None)
        k6 = proc(k6_pid) if k6_pid else (None, None)
        r, a, l = s["requests"], s["admission"], s["latency"]
        writer.writerow([round(time.time() - start, 2), r["total"], r["proxied"], r["shed"], r["gateway_answer"],
                         r["client_gone"], r["cut_off"], a["in_flight"], a["queued"], a["slots"], a["capacity"],
                         a["utilization"], l["p50_ms"], l["p95_ms"], l["p99_ms"], s["connections"]["client"],
                         gw[0], gw[1], k6[0], k6[1]] + [s["shed"].get(x, 0) for x in reasons])
        f.flush()
        time.sleep(max(0, 1 - (time.time() - start) % 1))
