import asyncio, sys, time
N=int(sys.argv[1]); PORT=int(sys.argv[2])
async def conn():
    r,w=await asyncio.open_connection('127.0.0.1',PORT)
    return r,w
async def req(r,w):
    t=time.perf_counter()
    w.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"); await w.drain()
    head=await r.readuntil(b"\r\n\r\n")
    n=int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    await r.readexactly(n)
    return time.perf_counter()-t
async def main():
    cs=[]
    for i in range(0,N,500):
        cs+=await asyncio.gather(*[conn() for _ in range(min(500,N-i))])
    # warm: one request each, sequentially in small groups (pool fills to its idle cap)
    for i in range(0,N,200):
        await asyncio.gather(*[req(*c) for c in cs[i:i+200]])
    await asyncio.sleep(6)  # idle: pooled upstream connections beyond the idle cap close (1 s), clients park
    lat=sorted(await asyncio.gather(*[req(*c) for c in cs]))
    q=lambda p: lat[min(len(lat)-1,int(p*len(lat)))]*1000
    print(f"burst of {N}: p50 {q(.5):.1f} ms p95 {q(.95):.1f} p99 {q(.99):.1f} max {lat[-1]*1000:.1f}; over 900 ms: {sum(1 for x in lat if x>0.9)}")
asyncio.run(main())
