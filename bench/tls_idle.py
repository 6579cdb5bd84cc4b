#!/usr/bin/env python3
"""Memory per idle TLS keep-alive connection after a large response or upload, for
bench/tls-idle.sh.

  tls_idle.py upstream PORT            a keep-alive HTTP/1.1 upstream: GET /big/N answers
                                       N bytes, anything else 2 (request bodies read)
  tls_idle.py client PORT N MODE SIZE PID
                                       N TLS connections (certificate not verified), each
                                       sends one request — MODE get: GET /big/SIZE; post:
                                       POST /small with a SIZE-byte body — reads the answer,
                                       then all stay idle 10 s; prints PID's resident-set
                                       growth per connection
"""
import asyncio
import ssl
import sys


async def upstream(port):
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split()[1].decode()
                length = [l for l in lines if l.lower().startswith(b"content-length")]
                if length:
                    await reader.readexactly(int(length[0].split(b":")[1]))
                n = int(path.split("/")[-1]) if path.startswith("/big/") else 2
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    await server.serve_forever()


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


async def client(port, count, mode, size, pid):
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    before = resident_kib(pid)
    held = []
    gate = asyncio.Semaphore(64)
    request = (b"GET /big/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size if mode == "get"
               else b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"y" * size)

    async def one():
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
            await reader.readexactly(n)
            held.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(10)
    print(f"{mode:4} {size:7} bytes: held={len(held)} per_conn_kib={(resident_kib(pid) - before) / len(held):.1f}")


if __name__ == "__main__":
    if sys.argv[1] == "upstream":
        asyncio.run(upstream(int(sys.argv[2])))
    else:
        asyncio.run(client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])))
