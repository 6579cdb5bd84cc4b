#!/usr/bin/env python3
"""Traffic for bench/soak.sh that wrk and hey cannot make, on raw sockets.

Modes (each runs CONNS connection loops for SECONDS, then prints one JSON line):

  integrity  pipelines batches of 1-8 unique POST or PUT /api/echo requests (unique
             body id and X-Request-ID, some chunked; a PUT's body is held by the
             gateway and resent after a stale keep-alive connection) and checks that every response belongs
             to its own request: same X-Request-ID, and for a 200 the echoed id.
             A shed (429/503 with X-Fluxgate-Shed) must still carry its request's ID.
  bodies     large request and response bodies (64-900 KB echoes, Content-Length or
             chunked), checked for length and id.
  abort      clients that go away at bad moments: half a head, a request then a
             reset, half a body, a large response read for 4 KB then a reset, and
             a half-close after a complete request (answered with its own answer, or given
             up by the gateway: abort_on_client_close).
  parking    keep-alive connections quiet for 0-2.6 s between batches of 1-3 echoes
             (the soak parks connections idle for 1 s), a head sometimes in two writes
             across the wake-up; every answer checked as in integrity.

SOAK_TLS=1 speaks TLS to the gateway (certificate not verified); abort then has no
half-close, which asyncio cannot make on a TLS stream.

Exit status 1 when an integrity or body check failed (the JSON says which).
"""
import asyncio
import json
import os
import random
import socket
import ssl
import struct
import sys
import time


def tls_context():
    """SOAK_TLS=1: the gateway terminates TLS (bench/soak.sh TLS=1) with a certificate
    made for the run; it is not verified."""
    if os.environ.get("SOAK_TLS") != "1":
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


TLS = tls_context()


def linger_reset(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def read_response(reader):
    """One response: (status, headers dict (lower-case names), body bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status in (204, 304):
        # No body whatever the fields say: a 304 may carry the Content-Length of the
        # representation it stands for (RFC 9110 §8.6), and the gateway relays it so.
        body = b""
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return status, headers, body


def echo_request(uid, key, pad, chunked, method="POST"):
    """An echo request: POST, or PUT — idempotent, so a gateway that read its body whole
    may resend it after a stale keep-alive connection or a 502/503/504 (the restart
    phase kills an upstream under it)."""
    body = json.dumps({"id": uid, "pad": "x" * pad}).encode()
    # One target in three carries a query of 0-300 bytes: past the 64 bytes an
    # exchange holds inline, so long targets are relayed all along too.
    target = "/api/echo"
    if random.random() < 1 / 3:
        target += "?trace=" + "t" * random.randint(0, 300)
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: soak\r\nX-Request-ID: {uid}\r\n"
        f"X-API-Key: {key}\r\nContent-Type: application/json\r\n"
    )
    if chunked:
        cut = random.randint(1, len(body) - 1)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:cut], body[cut:]))
        return head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n", body
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body, body


# The gateway's limits.max_requests_per_connection as the soak set it (0: none).
MAX_REQUESTS = int(os.environ.get("SOAK_MAX_REQUESTS", "0"))


class GatewayClosed(Exception):
    """An answer said `Connection: close`: the session ends with it. The argument is
    the number of answers the connection carried."""


class Stats:
    def __init__(self):
        self.requests = 0
        self.ok = 0
        self.shed = {}
        self.other = {}
        self.mismatches = []
        self.connections = 0
        self.errors = {}
        # Connections the gateway ended with `Connection: close` after a complete answer
        # at SOAK_MAX_REQUESTS answers (limits.max_requests_per_connection): an orderly
        # end, not an error; requests pipelined behind that answer go unanswered, as
        # HTTP/1.1 allows. A close after any other number of answers is `closed_early`.
        self.closed_by_gateway = 0
        self.closed_early = 0

    def note_error(self, error):
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def check(self, status, headers, body, uid):
        self.requests += 1
        if headers.get("x-request-id") != uid:
            self.mismatches.append(f"{uid}: got x-request-id {headers.get('x-request-id')} status {status}")
            return
        if status == 200:
            if f'"id":"{uid}"'.encode() not in body.replace(b" ", b""):
                self.mismatches.append(f"{uid}: body is not its echo ({body[:80]!r})")
                return
            self.ok += 1
        elif "x-fluxgate-shed" in headers:
            reason = headers["x-fluxgate-shed"]
            self.shed[reason] = self.shed.get(reason, 0) + 1
        else:
            self.other[str(status)] = self.other.get(str(status), 0) + 1


async def each_connection(host, port, deadline, stats, session):
    """Opens connections until the deadline and runs `session(n, reader, writer)` on each;
    a failed connect or a session's socket error is counted, not fatal."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=TLS)
        except OSError as error:
            stats.note_error(error)
            await asyncio.sleep(0.05)
            continue
        stats.connections += 1
        writer.answers = 0  # answers on this connection (echo_batch)
        try:
            await session(reader, writer)
        except GatewayClosed as closed:
            if closed.args[0] == MAX_REQUESTS:
                stats.closed_by_gateway += 1
            else:
                stats.closed_early += 1
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError) as error:
            stats.note_error(error)
        finally:
            writer.close()


async def echo_batch(reader, writer, stats, uids, key, max_pad, chunked_share, split_head=False):
    """Pipelines one echo per id in one write (or, with split_head, the first bytes, a
    pause of up to 50 ms, then the rest), then checks each answer against its request."""
    wire = b"".join(
        echo_request(uid, key, random.randint(0, max_pad), random.random() < chunked_share, random.choice(("POST", "PUT")))[0]
        for uid in uids)
    if split_head:
        cut = random.randint(1, 20)
        writer.write(wire[:cut])
        await writer.drain()
        await asyncio.sleep(random.random() * 0.05)
        wire = wire[cut:]
    writer.write(wire)
    await writer.drain()
    for uid in uids:
        status, headers, body = await read_response(reader)
        stats.check(status, headers, body, uid)
        writer.answers += 1
        if headers.get("connection", "").lower() == "close":
            raise GatewayClosed(writer.answers)


async def integrity_loop(n, host, port, deadline, stats):
    seq = 0

    async def session(reader, writer):
        nonlocal seq
        key = f"i{n}-{stats.connections}"
        for _ in range(random.randint(1, 40)):
            if time.monotonic() >= deadline:
                break
            count = random.randint(1, 8)
            # One ID in three is longer than the 64 bytes held inline (up to 200 are kept).
            uids = [f"soak-{os.getpid()}-{n}-{seq + i + 1}" + ("-" + "r" * random.randint(40, 150) if random.random() < 1 / 3 else "")
                    for i in range(count)]
            seq += count
            await echo_batch(reader, writer, stats, uids, key, 3000, 0.3)
            await asyncio.sleep(random.random() * 0.004)

    await each_connection(host, port, deadline, stats, session)


async def bodies_loop(n, host, port, deadline, stats):
    seq = 0

    async def session(reader, writer):
        nonlocal seq
        for _ in range(random.randint(1, 5)):
            seq += 1
            uid = f"big-{os.getpid()}-{n}-{seq}"
            request, body = echo_request(
                uid, f"b{n}", random.randint(64_000, 900_000), random.random() < 0.5, random.choice(("POST", "PUT")))
            writer.write(request)
            await writer.drain()
            status, headers, answer = await read_response(reader)
            stats.check(status, headers, answer, uid)
            if status == 200 and len(answer) != len(body) + len('{"echo":,"message":"Echo successful"}'):
                stats.mismatches.append(f"{uid}: echo of {len(body)} bytes came back as {len(answer)}")

    await each_connection(host, port, deadline, stats, session)


async def abort_loop(n, host, port, deadline, stats):
    kinds = ["half_head", "request_then_reset", "half_body", "mid_response_reset"]
    if TLS is None:
        kinds.append("half_close")  # asyncio cannot half-close a TLS stream
    seq = 0

    async def session(reader, writer):
        nonlocal seq
        kind = random.choice(kinds)
        seq += 1
        uid = f"abort-{os.getpid()}-{n}-{seq}"
        stats.shed[kind] = stats.shed.get(kind, 0) + 1
        if kind == "half_head":
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: so")
            await writer.drain()
        elif kind == "request_then_reset":
            writer.write(f"GET /api/status HTTP/1.1\r\nHost: soak\r\nX-API-Key: a{n}\r\n\r\n".encode())
            await writer.drain()
            linger_reset(writer)
        elif kind == "half_body":
            writer.write(b"POST /api/echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000)
            await writer.drain()
        elif kind == "mid_response_reset":
            request, _ = echo_request(uid, f"a{n}", 500_000, False)
            writer.write(request)
            await writer.drain()
            await reader.read(4096)
            linger_reset(writer)
        else:  # half_close: a complete request, then no more input. With the default
            # abort_on_client_close the gateway may give the request up (a close without
            # an answer, counted as half_close_aborted); an answer that comes must be its own.
            writer.write(f"GET /api/status HTTP/1.1\r\nHost: soak\r\nX-Request-ID: {uid}\r\nX-API-Key: a{n}\r\n\r\n".encode())
            await writer.drain()
            writer.write_eof()
            try:
                status, headers, body = await read_response(reader)
            except asyncio.IncompleteReadError as closed:
                if closed.partial:
                    stats.mismatches.append(f"{uid}: half-close answer cut off after {len(closed.partial)} bytes")
                stats.shed["half_close_aborted"] = stats.shed.get("half_close_aborted", 0) + 1
                return
            if headers.get("x-request-id") != uid:
                stats.mismatches.append(f"{uid}: half-close answer has x-request-id {headers.get('x-request-id')}")
        await asyncio.sleep(random.random() * 0.005)

    await each_connection(host, port, deadline, stats, session)


async def parking_loop(n, host, port, deadline, stats):
    """Keep-alive connections that go quiet for 0-2.6 s between batches: with the
    soak's `park_after: 1s` about half the gaps park the connection and the next batch
    wakes it; a head is sometimes sent in two writes across a pause. Every answer must
    be its own request's, and the gateway must never close the connection (its idle
    timeout is 5 s)."""
    seq = 0

    async def session(reader, writer):
        nonlocal seq
        key = f"p{n}-{stats.connections}"
        for batch_number in range(random.randint(3, 12)):
            if time.monotonic() >= deadline:
                break
            if batch_number:
                # Not before the first: a new connection's first head is due within
                # `client_header` (2 s here), as in nginx.
                await asyncio.sleep(random.random() * 2.6)
            count = random.randint(1, 3)
            uids = [f"park-{os.getpid()}-{n}-{seq + i + 1}" for i in range(count)]
            seq += count
            await echo_batch(reader, writer, stats, uids, key, 2000, 0.2, split_head=random.random() < 0.2)

    await each_connection(host, port, deadline, stats, session)


async def main():
    mode, port, conns, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    loop_for = {"integrity": integrity_loop, "bodies": bodies_loop, "abort": abort_loop, "parking": parking_loop}[mode]
    stats = Stats()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(loop_for(n, "127.0.0.1", port, deadline, stats) for n in range(conns)))
    print(json.dumps({
        "mode": mode, "connections": stats.connections, "requests": stats.requests, "ok": stats.ok,
        "shed_or_kinds": stats.shed, "other_status": stats.other, "socket_errors": stats.errors,
        "closed_by_gateway": stats.closed_by_gateway, "closed_early": stats.closed_early,
        "mismatches": len(stats.mismatches), "first_mismatches": stats.mismatches[:5],
    }, sort_keys=True))
    # A parked connection the gateway closed or reset is a failure too: it never should.
    return 1 if stats.mismatches or (mode == "parking" and (stats.errors or stats.closed_early)) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
