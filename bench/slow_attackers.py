#!/usr/bin/env python3
"""Slow and hostile clients for bench/slow-clients.sh, over raw sockets (asyncio).

Four kinds, each kept at its count for the whole run (a connection the gateway
closes is replaced):
  uploads   POST with Content-Length 1000, 3 body bytes, then nothing
  large     POST with Content-Length 1000000, 70 000 body bytes (past the gateway's
            64 KiB request buffer), then one byte every 2 s
  trickle   a request head sent one byte every 2 s (slowloris)
  readers   GET of a large response, never read (receive buffer 4 KiB)

Prints one JSON line per second to stdout: how many of each are connected and how
many the gateway closed so far, and finally a summary line.
"""
import argparse
import asyncio
import json
import socket
import time

stats = {kind: {"open": 0, "closed_by_gateway": 0, "answered_408": 0, "connect_errors": 0}
         for kind in ("uploads", "large", "trickle", "readers")}


async def connect(host, port, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return sock


async def until_closed(sock, kind, read=True):
    """Waits for the gateway to close (reading what it sends when `read`)."""
    loop = asyncio.get_running_loop()
    received = b""
    try:
        while True:
            data = await loop.sock_recv(sock, 4096)
            if not data:
                break
            received += data[:64]
    except (ConnectionError, OSError):
        pass
    if received.startswith(b"HTTP/1.1 408"):
        stats[kind]["answered_408"] += 1
    stats[kind]["closed_by_gateway"] += 1


async def upload(host, port, stop, kind="uploads"):
    if kind == "large":
        first = b"POST /health HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 70_000
    else:
        first = b"POST /health HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nabc"
    while not stop.is_set():
        try:
            sock = await connect(host, port)
        except OSError:
            stats[kind]["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats[kind]["open"] += 1
        try:
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(sock, first)
            waiter = asyncio.ensure_future(until_closed(sock, kind))
            stopper = asyncio.ensure_future(stop.wait())
            while True:
                # A large upload keeps trickling (a byte every 2 s: under any
                # between-reads body timeout); a small one just stalls.
                done, _ = await asyncio.wait([waiter, stopper], timeout=2 if kind == "large" else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                await loop.sock_sendall(sock, b"x")
            stopper.cancel()
        except OSError:
            pass
        finally:
            stats[kind]["open"] -= 1
            sock.close()


async def trickle(host, port, stop):
    head = b"GET /health HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 200
    while not stop.is_set():
        try:
            sock = await connect(host, port)
        except OSError:
            stats["trickle"]["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["trickle"]["open"] += 1
        waiter = asyncio.ensure_future(until_closed(sock, "trickle"))
        try:
            for byte in head:
                if waiter.done() or stop.is_set():
                    break
                await asyncio.get_running_loop().sock_sendall(sock, bytes([byte]))
                await asyncio.sleep(2)
        except OSError:
            pass
        finally:
            stats["trickle"]["open"] -= 1
            waiter.cancel()
            sock.close()


async def reader(host, port, path, stop):
    while not stop.is_set():
        try:
            sock = await connect(host, port, rcvbuf=4096)
        except OSError:
            stats["readers"]["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["readers"]["open"] += 1
        try:
            await asyncio.get_running_loop().sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            # Never read: only notice the close (a zero-byte peek would read). Poll the
            # socket's state instead, once a second.
            while not stop.is_set():
                await asyncio.sleep(1)
                try:
                    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                except OSError:
                    break
                if state not in (1,):  # TCP_ESTABLISHED
                    stats["readers"]["closed_by_gateway"] += 1
                    break
        except OSError:
            pass
        finally:
            stats["readers"]["open"] -= 1
            sock.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--large", type=int, default=0)
    parser.add_argument("--trickle", type=int, default=2000)
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--reader-path", default="/big")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--readers-after", type=float, default=0,
                        help="start the non-readers this many seconds in")
    args = parser.parse_args()
    host = "127.0.0.1"
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(upload(host, args.port, stop)) for _ in range(args.uploads)]
    tasks += [asyncio.ensure_future(upload(host, args.port, stop, "large")) for _ in range(args.large)]
    tasks += [asyncio.ensure_future(trickle(host, args.port, stop)) for _ in range(args.trickle)]

    async def late_readers():
        await asyncio.sleep(args.readers_after)
        return [asyncio.ensure_future(reader(host, args.port, args.reader_path, stop)) for _ in range(args.readers)]

    readers_task = asyncio.ensure_future(late_readers())
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        await asyncio.sleep(1)
        print(json.dumps({"t": round(time.monotonic() - start, 1), **{k: dict(v) for k, v in stats.items()}}), flush=True)
    stop.set()
    readers = await readers_task
    await asyncio.wait(tasks + readers, timeout=5)
    print(json.dumps({"summary": stats}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
