#!/usr/bin/env python3
"""A counting upstream for bench/cluster.sh: answers every GET after DELAY_MS and
records how many requests it holds at each arrival (that request included), so the
script can report the peak and the 99th percentile of its concurrency.

GET /__stats  -> {"requests": n, "peak": p, "p99": q, "p50": m} since the last reset
POST /__reset -> starts over
Anything else -> 200 {"ok":true} after DELAY_MS (x-upstream-concurrency: count).
HTTP/1.1 keep-alive; request bodies are not expected (Content-Length is honoured).
"""
import asyncio, json, sys

PORT = int(sys.argv[1])
DELAY = float(sys.argv[2]) / 1000.0
current = 0
samples = []


def percentile(values, p):
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100.0))]


async def handle(reader, writer):
    global current, samples
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            if target == "/__stats":
                body = json.dumps({"requests": len(samples), "peak": max(samples, default=0),
                                   "p99": percentile(samples, 99), "p50": percentile(samples, 50)}).encode()
            elif target == "/__reset":
                samples = []
                body = b'{"reset":true}'
            else:
                current += 1
                samples.append(current)
                try:
                    await asyncio.sleep(DELAY)
                finally:
                    current -= 1
                body = b'{"ok":true}'
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()

asyncio.run(main())
