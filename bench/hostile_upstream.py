#!/usr/bin/env python3
"""An upstream that misbehaves on purpose, for bench/hostile-upstream.sh.

    python3 bench/hostile_upstream.py PORT

`GET /health` and `GET /api/status` are 200 and `POST|PUT /api/echo` echoes its body as the demo upstream does
(`{"echo":<body>,"message":"Echo successful"}`), a query string ignored, so soak_client.py's integrity and
abort checks can run through it. Every other path answers by its last segment (`/chaos/<kind>`, or
`/chaos/random` for one picked per request) with one of the broken answers below —
what a buggy or hostile application sends a proxy: answers outside a response, broken
framing, forbidden fields, heads that never end, bodies cut off, resets. Each must end
as an error for its own request only (a 502, a 504, a cut-off response), never as bytes
in another request's answer, and must leave nothing held in the gateway.
"""
import asyncio
import json
import random
import socket
import struct
import sys

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# kind -> a list of steps: bytes to write, ("sleep", seconds), "close" or "reset".
KINDS = {
    "interim": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK],
    "body_on_204": [b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"],
    "length_on_304": [b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"],
    "cl_and_te": [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
    "two_lengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"],
    "cut_body": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "close"],
    "bad_chunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"],
    "until_close": [b"HTTP/1.1 200 OK\r\n\r\nuntil-close", "close"],
    # A second, unasked-for response right behind the first, in the same write...
    "extra_response": [OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSMUGGL"],
    # ...and junk arriving after the answer, once the connection may be idle in the pool.
    "late_junk": [OK, ("sleep", 0.02), b"garbage after the response\r\n"],
    "bare_lf": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
    "unasked_101": [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxx"],
    "huge_head": [b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\nok"],
    "long_extension": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;" + b"x" * 100_000 + b"\r\nok\r\n0\r\n\r\n"],
    "framing_trailer": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Length: 5\r\n\r\n"],
    "nul_in_field": [b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"],
    "status_999": [b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok"],
    "head_stalls": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", ("sleep", 3), "close"],
    "body_stalls": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", ("sleep", 3), "close"],
    "silence": [("sleep", 3), "close"],
    "reset": ["reset"],
    "close": ["close"],
    "http10_close": [b"HTTP/1.0 200 OK\r\n\r\nten", "close"],
}


async def read_request(reader):
    """(method, path, body) of one request; the body read by Content-Length or chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = lines[0].split(" ")[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return method, path, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return method, path, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return method, path, b""


async def handle(reader, writer):
    try:
        while True:
            method, target, body = await read_request(reader)
            # Routed on the path without its query, as the demo upstream does:
            # soak_client.py sends a third of its echoes with a long query.
            path = target.split("?", 1)[0]
            if path in ("/health", "/api/status"):
                writer.write(OK)
            elif path == "/api/echo":
                try:
                    echoed = json.loads(body)
                except ValueError:
                    echoed = None
                answer = json.dumps({"echo": echoed, "message": "Echo successful"}, separators=(",", ":")).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            else:
                kind = path.rsplit("/", 1)[-1]
                if kind not in KINDS:
                    kind = random.choice(list(KINDS))
                for step in KINDS[kind]:
                    if isinstance(step, bytes):
                        writer.write(step)
                        await writer.drain()
                    elif isinstance(step, tuple):
                        await asyncio.sleep(step[1])
                    elif step == "reset":
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                        return
                    else:
                        writer.close()
                        return
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
