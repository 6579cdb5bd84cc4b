import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "bench")
from soak_client import read_response
async def main():
    res = {}
    r, w = await asyncio.open_connection("127.0.0.1", 18080)
    for i in range(300):
        for path, delay in (("/chaos/late_junk", 0), ("/api/echo", 0), ("/chaos/late_junk", 0), ("/api/echo", 0.005),
                            ("/chaos/late_junk", 0), ("/api/echo", 0.03)):
            await asyncio.sleep(delay)
            uid = f"x{i}-{delay}"
            body = json.dumps({"id": uid}).encode()
            if path == "/api/echo":
                w.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {uid}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            else:
                w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {uid}\r\n\r\n".encode())
            await w.drain()
            try:
                st, h, b = await asyncio.wait_for(read_response(r), 5)
            except Exception as e:
                k = (path, delay, "error " + type(e).__name__)
                res[k] = res.get(k, 0) + 1
                r, w = await asyncio.open_connection("127.0.0.1", 18080)
                continue
            ok = h.get("x-request-id") == uid and (st != 200 or path != "/api/echo" or uid.encode() in b)
            k = (path, delay, st, ok)
            res[k] = res.get(k, 0) + 1
            if h.get("connection") == "close":
                w.close(); r, w = await asyncio.open_connection("127.0.0.1", 18080)
    for k, v in sorted(res.items(), key=str): print(k, v)
asyncio.run(main())
