#!/usr/bin/env python3
"""Memory per idle keep-alive connection, for bench/compare.sh.

Usage: idle_conns.py PORT N PID [PID ...]
Opens N connections to 127.0.0.1:PORT, sends one `GET /health` on each, reads the
answer, then holds them all open and idle. Prints the summed resident set of the
given processes and their direct children (nginx's workers) before and after, and
the growth per connection. Connections that fail are counted, not retried.
With IDLE_HOLD_SIGNAL=PID, SIGWINCH goes to PID right before each reading (the
live-allocation counter of bench/idle-memory.sh prints its totals on it). With
IDLE_UPLOAD_BYTES=B, each connection first sends `POST /health` with a body of B bytes
(what an idle connection keeps after an upload). IDLE_SETTLE=S (seconds, default 1):
how long the connections are held idle before the reading (Fluxgate parks a connection
idle for `timeouts.park_after`, 5 s by default: a reading after that shows what a
connection costs idle, one before it what it costs between requests). IDLE_TLS=1: the
connections speak TLS (certificate not verified: a self-signed test certificate).
"""
import asyncio
import os
import resource
import signal
import ssl
import sys
import time


def resident_kib(roots):
    """VmRSS of the given pids and of every process whose parent is one of them."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if int(entry) in roots or parent in roots:
                with open(f"/proc/{entry}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            pass  # the process went away meanwhile
    return total


async def main():
    port, count, roots = int(sys.argv[1]), int(sys.argv[2]), {int(p) for p in sys.argv[3:]}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    signal_pid = int(os.environ.get("IDLE_HOLD_SIGNAL") or 0)
    upload = int(os.environ.get("IDLE_UPLOAD_BYTES") or 0)
    request = (b"POST /health HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % upload + b"x" * upload
               if upload else b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")

    def mark():
        if signal_pid:
            os.kill(signal_pid, signal.SIGWINCH)
            time.sleep(0.3)

    mark()
    before = resident_kib(roots)
    held, failed = [], 0
    gate = asyncio.Semaphore(256)  # connect in waves: no SYN flood, no accept-queue drops
    tls = None
    if os.environ.get("IDLE_TLS") == "1":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    async def open_one():
        nonlocal failed
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=tls), 10)
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
                await asyncio.wait_for(reader.readexactly(length), 10)
                held.append(writer)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failed += 1

    await asyncio.gather(*(open_one() for _ in range(count)))
    await asyncio.sleep(float(os.environ.get("IDLE_SETTLE") or 1))  # let the server settle after the last answer
    after = resident_kib(roots)
    mark()
    per = (after - before) / max(len(held), 1)
    print(f"held={len(held)} failed={failed} rss_before_kib={before} rss_after_kib={after} per_conn_kib={per:.2f}")
    for writer in held:
        writer.close()


asyncio.run(main())
