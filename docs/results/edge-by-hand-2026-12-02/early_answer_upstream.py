import socket, threading, sys
def handle(c):
    buf=b''
    while b'\r\n\r\n' not in buf:
        d=c.recv(65536)
        if not d: c.close(); return
        buf+=d
    if buf.startswith(b'GET /health'):
        c.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'); c.close(); return
    c.sendall(b'HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large')
    c.shutdown(socket.SHUT_WR)
    try:
        while c.recv(65536): pass
    except Exception: pass
    c.close()
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(('127.0.0.1',int(sys.argv[1]))); s.listen(128)
while True:
    c,_=s.accept(); threading.Thread(target=handle,args=(c,),daemon=True).start()
