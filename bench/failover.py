#!/usr/bin/env python3
"""The failover scenario of bench/failover.sh (which builds fluxgate and calls this).

Three demo upstream processes (a, b, c) behind one gateway (one event loop), steady
keep-alive load of idempotent GETs from CONNS connections, and on one clock:

  +10 s  kill -9 c                      expect: no client error (connect failover, retries)
  +25 s  restart c                      expect: back within rise x interval (+ slow start)
  +35 s  POST /admin/health/fail on b   expect: out after fall x interval, no error
  +45 s  fail a and c too               expect: immediate 503 no_healthy_upstream
  +50 s  recover a, b, c                expect: back without intervention
  +60 s  kill -STOP b (it hangs)        expect: out after fall probe timeouts; the
                                        requests already on b wait for upstream_header,
                                        then go to a or c (retry.on_timeout: no error)
  +70 s  kill -CONT b                   expect: back after rise probes
  +80 s  stop

Prints, per phase, requests by upstream instance, sheds by reason and errors by kind
(a 5xx that is not a Fluxgate shed, a reset, a timeout), then the time from each
event to the gateway's matching "upstream down"/"upstream up" log line.
Usage: failover.py BIN WORKDIR
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_client import read_response  # noqa: E402  (one HTTP/1.1 response reader for both)

BIN, WORK = sys.argv[1], sys.argv[2]
GW, PORTS = 18780, {"a": 19781, "b": 19782, "c": 19783}
CONNS = int(os.environ.get("CONNS", "32"))
BALANCER = os.environ.get("BALANCER", "round_robin")  # or least_requests
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


procs = {}


def start_upstream(name):
    log = open(f"{WORK}/{name}.log", "a")
    procs[name] = subprocess.Popen(
        [BIN, "demo-upstream", "--port", str(PORTS[name]), "--instance", name, "--workers", "1", "--latency-ms", "2"],
        stdout=log, stderr=log)
    wait_port(PORTS[name], "/health")


def wait_port(port, path):
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=0.5).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"port {port} is not answering")


def admin(name, action):
    request = urllib.request.Request(f"http://127.0.0.1:{PORTS[name]}/admin/health/{action}", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=2).read()


config = f"""listen: "127.0.0.1:{GW}"
admin_listen: "127.0.0.1:{GW + 2000}"
workers: 1
demo: {{ enabled: false }}
upstreams:
  - {{ name: a, url: "http://127.0.0.1:{PORTS['a']}" }}
  - {{ name: b, url: "http://127.0.0.1:{PORTS['b']}" }}
  - {{ name: c, url: "http://127.0.0.1:{PORTS['c']}" }}
health_check: {{ interval: 1s, timeout: 500ms, rise: 2, fall: 3, slow_start: 5s }}
rate_limit: {{ per_client: {{ enabled: false }} }}
timeouts: {{ upstream_header: 5s }}  # short, so the hang phase shows its cost
balancer: {BALANCER}
"""
open(f"{WORK}/failover.yaml", "w").write(config)
for name in PORTS:
    start_upstream(name)
gateway_log = open(f"{WORK}/gateway.log", "w")
gateway = subprocess.Popen([BIN, "--config", f"{WORK}/failover.yaml"], stdout=gateway_log, stderr=subprocess.STDOUT)
wait_port(GW, "/api/status")

phase = "steady"
stats = {}
log_events = []  # (t, text)
events = []      # (t, text)


def note(kind, key):
    bucket = stats.setdefault(phase, {"requests": 0, "by_instance": {}, "shed": {}, "errors": {}})
    bucket["requests"] += 1
    target = bucket[kind]
    target[key] = target.get(key, 0) + 1


async def client(stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", GW)
        except OSError as error:
            note("errors", f"connect: {type(error).__name__}")
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(b"GET /api/status HTTP/1.1\r\nHost: failover\r\n\r\n")
                status, headers, _ = await asyncio.wait_for(read_response(reader), 10)
                if "x-fluxgate-shed" in headers:
                    note("shed", headers["x-fluxgate-shed"])
                elif status == 200:
                    note("by_instance", headers.get("x-upstream-instance", "?"))
                else:
                    note("errors", f"status {status}")
                if headers.get("connection", "").lower() == "close":
                    break
                await asyncio.sleep(0.005)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
            note("errors", type(error).__name__)
        finally:
            writer.close()


async def tail_log(stop):
    """Timestamps the gateway's flip lines as they are written (the log has 1 s resolution)."""
    with open(f"{WORK}/gateway.log") as f:
        while not stop.is_set():
            line = f.readline()
            if not line:
                await asyncio.sleep(0.01)
                continue
            if "upstream down" in line or "upstream up" in line or "panic" in line:
                log_events.append((now(), line.strip()))


async def scenario():
    global phase
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(stop)) for _ in range(CONNS)] + [asyncio.create_task(tail_log(stop))]
    loop = asyncio.get_running_loop()

    async def at(t, new_phase, action, text):
        global phase
        await asyncio.sleep(max(0, t - now()))
        phase = new_phase
        events.append((now(), text))
        await loop.run_in_executor(None, action)

    await at(10, "c killed", lambda: (procs["c"].send_signal(signal.SIGKILL), procs["c"].wait()), "kill -9 c")
    await at(25, "c restarted", lambda: start_upstream("c"), "restart c")
    await at(35, "b failing health", lambda: admin("b", "fail"), "b: POST /admin/health/fail")
    await at(45, "all failing", lambda: (admin("a", "fail"), admin("c", "fail")), "a, c: POST /admin/health/fail")
    await at(50, "all recovered", lambda: [admin(n, "recover") for n in PORTS], "a, b, c: POST /admin/health/recover")
    await at(60, "b hung", lambda: procs["b"].send_signal(signal.SIGSTOP), "kill -STOP b")
    await at(70, "b resumed", lambda: procs["b"].send_signal(signal.SIGCONT), "kill -CONT b")
    await asyncio.sleep(max(0, 80 - now()))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


asyncio.run(scenario())
# What the gateway counted: its retries, the retries the budget refused, requests ended
# by upstream_header (each such 504 is a retry the budget or retry.on_timeout refused).
with urllib.request.urlopen(f"http://127.0.0.1:{GW + 2000}/metrics", timeout=5) as response:
    counted = [line for line in response.read().decode().splitlines()
               if line.startswith(("fluxgate_retries_total", "fluxgate_retry_budget_exhausted_total",
                                   'fluxgate_timeouts_total{phase="upstream_header"}'))]
gateway.send_signal(signal.SIGTERM)
gateway.wait(timeout=10)
for proc in procs.values():
    proc.terminate()

print(f"== failover: 3 demo upstreams (2 ms service time), gateway workers: 1, balancer: {BALANCER}, "
      f"{CONNS} keep-alive clients, health interval 1s, rise 2, fall 3, slow_start 5s")
print(f"{'phase':<18} {'requests':>9} {'per s':>7}  {'a':>6} {'b':>6} {'c':>6}  sheds / errors")
total_errors = 0
starts = [0] + [t for t, _ in events] + [80]
for index, (name, bucket) in enumerate(stats.items()):
    inst = bucket["by_instance"]
    total_errors += sum(bucket["errors"].values())
    seconds = starts[index + 1] - starts[index]
    print(f"{name:<18} {bucket['requests']:>9} {bucket['requests'] / seconds:>7.0f}  "
          f"{inst.get('a', 0):>6} {inst.get('b', 0):>6} {inst.get('c', 0):>6}  "
          f"shed={json.dumps(bucket['shed'], sort_keys=True)} errors={json.dumps(bucket['errors'], sort_keys=True)}")
print("== events (seconds since start) and the gateway's flips after them")
for t, text in events:
    print(f"{t:7.2f}  {text}")
    for lt, line in log_events:
        if t <= lt < t + 10 and not any(t < et <= lt for et, _ in events):
            print(f"{lt:7.2f}    +{lt - t:5.2f} s  {line.split(' ', 1)[-1][:170]}")
print("== the gateway's counters at the end")
for line in counted:
    print(f"  {line}")
print(f"client errors in total: {total_errors} (a status 504 is a request on b when it hung that waited out "
      "upstream_header and was not retried elsewhere: the retry budget was spent)")
