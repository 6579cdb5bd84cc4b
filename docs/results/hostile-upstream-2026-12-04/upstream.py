import asyncio, sys
CASES = {
"/health": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
 "/ok": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
 "/extra": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA-GARBAGE"],
 "/smuggle": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"],
 "/204body": [b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"],
 "/304body": [b"HTTP/1.1 304 Not Modified\r\n\r\nhello"],
 "/103": [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
 "/100": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
 "/closemid": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "close"],
 "/nocl": [b"HTTP/1.1 200 OK\r\n\r\nclose-delimited body", "close"],
 "/tecl": [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
 "/badchunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
 "/hugehead": [b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200000 + b"\r\nContent-Length: 2\r\n\r\nok"],
 "/101": [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAWBYTES"],
 "/dupcl": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello"],
 "/http10": [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
 "/garbage": [b"SSH-2.0-OpenSSH\r\n\r\n"],
 "/lfonly": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
 "/neg": [b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok"],
 "/sp": [b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"],
 "/status999": [b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok"],
 "/nostatus": [b"HTTP/1.1 \r\nContent-Length: 2\r\n\r\nok"],
 "/chunkext": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;" + b"x" * 100000 + b"\r\nok\r\n0\r\n\r\n"],
 "/trailers": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: yes\r\n\r\n"],
 "/silent": ["hang"],
 # 200 000 one-byte chunks (for docs/results/tiny-chunks-2026-12-04/response-trial.sh)
 "/tinychunks": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 200000 + b"0\r\n\r\n"],
}
async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n")[0].decode()
            method, path = line.split()[0], line.split()[1]
            for h in head.split(b"\r\n"):
                if h.lower().startswith(b"content-length:"):
                    await r.readexactly(int(h.split(b":")[1]))
            for step in CASES.get(path, [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]):
                if step == "close":
                    w.close(); return
                if step == "hang":
                    await asyncio.sleep(3600)
                w.write(step); await w.drain()
    except Exception:
        w.close()
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    await s.serve_forever()
asyncio.run(main())
