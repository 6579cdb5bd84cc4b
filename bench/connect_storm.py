#!/usr/bin/env python3
"""A reconnect storm, for bench/connect-storm.sh: opens N connections to 127.0.0.1:PORT
all at once, sends one `GET /health` on each, reads the answer and closes. Prints how
long the whole storm took and the distribution of per-connection times (connect to
answer), in milliseconds; failed connections are counted, not retried.

Usage: connect_storm.py PORT N
"""
import asyncio
import sys
import time


async def one(port: int) -> float | None:
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: storm\r\nConnection: close\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        if not head.startswith(b"HTTP/1.1 200"):
            return None
        return (time.monotonic() - start) * 1000
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


async def main(port: int, n: int) -> None:
    start = time.monotonic()
    times = await asyncio.gather(*(one(port) for _ in range(n)))
    total = (time.monotonic() - start) * 1000
    ok = sorted(t for t in times if t is not None)
    def pct(p: float) -> float:
        return ok[min(len(ok) - 1, int(p * len(ok)))] if ok else float("nan")
    print(f"storm: {n} connections, {len(ok)} answered 200, {n - len(ok)} failed; whole storm {total:.0f} ms; "
          f"per connection p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, max {ok[-1] if ok else float('nan'):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
