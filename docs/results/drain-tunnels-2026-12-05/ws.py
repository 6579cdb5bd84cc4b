# A WebSocket echo server (python websockets), and a client that pings through a proxy
# every 200 ms and prints how long its connection lasted after the proxy's stop signal.
import asyncio, sys, time
from websockets.asyncio.server import serve
from websockets.asyncio.client import connect
async def echo(ws):
    async for message in ws: await ws.send(message)
async def server(port):
    async with serve(echo, "127.0.0.1", port): await asyncio.Future()
async def client(port, signal_file):
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        open(signal_file, "w").close()  # connected: the runner may signal the proxy
        started = time.monotonic()
        try:
            while True:
                await ws.send("ping"); await ws.recv(); await asyncio.sleep(0.2)
        except Exception as error:
            print(f"{time.monotonic() - started:.1f} s after connecting: {type(error).__name__}")
if sys.argv[1] == "server": asyncio.run(server(int(sys.argv[2])))
else: asyncio.run(client(int(sys.argv[2]), sys.argv[3]))
