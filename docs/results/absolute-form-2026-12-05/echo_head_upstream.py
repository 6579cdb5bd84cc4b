import asyncio
async def h(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            body = head.replace(b"\r\n", b"|")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)); await w.drain()
    except Exception: w.close()
async def main():
    s = await asyncio.start_server(h, "127.0.0.1", 18399)
    async with s: await s.serve_forever()
asyncio.run(main())
