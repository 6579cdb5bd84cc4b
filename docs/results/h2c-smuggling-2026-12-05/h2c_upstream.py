#!/usr/bin/env python3
"""An h2c-capable upstream (python-h2): an HTTP/1.1 request with `Upgrade: h2c` and
`HTTP2-Settings` is answered 101 and the connection goes on in HTTP/2 (RFC 7540
§3.2), the upgrading request answered as stream 1; every request, HTTP/1.1 or
HTTP/2, gets 200 with its path, and is counted on stdout. Usage: h2c_upstream.py PORT"""
import asyncio, base64, sys
import h2.config, h2.connection, h2.events

async def serve(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    print(f"HTTP/1.1 {path} upgrade={fields.get('upgrade', '-')}", flush=True)
    if fields.get("upgrade", "").lower() != "h2c" or "http2-settings" not in fields:
        body = f"http/1.1 {path}\n".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain(); writer.close(); return
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    conn.initiate_upgrade_connection(fields["http2-settings"])
    def answer(stream, path):
        print(f"HTTP/2 {path}", flush=True)
        body = f"http/2 {path}\n".encode()
        conn.send_headers(stream, [(":status", "200"), ("content-length", str(len(body)))])
        conn.send_data(stream, body, end_stream=True)
    answer(1, path)
    writer.write(conn.data_to_send()); await writer.drain()
    while data := await reader.read(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                answer(event.stream_id, dict(event.headers)[b":path"].decode())
        writer.write(conn.data_to_send()); await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    async with server: await server.serve_forever()

asyncio.run(main())
