# upstream: answers an Upgrade with 101 then echoes bytes; plain GET gets 200
import socket, threading, sys
def handle(c):
    buf=b''
    while b'\r\n\r\n' not in buf:
        d=c.recv(65536)
        if not d: c.close(); return
        buf+=d
    head,rest=buf.split(b'\r\n\r\n',1)
    if b'upgrade' in head.lower():
        c.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n')
        if rest: c.sendall(rest)
        while True:
            d=c.recv(262144)
            if not d: break
            c.sendall(d)
        c.close()
    else:
        c.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'); c.close()
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(('127.0.0.1',int(sys.argv[1]))); s.listen(128)
while True:
    c,_=s.accept(); threading.Thread(target=handle,args=(c,),daemon=True).start()
