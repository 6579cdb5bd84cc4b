import socket, time, threading, collections
stop=time.time()+60; seen=collections.Counter()
def one():
    while time.time()<stop:
        s=socket.create_connection(("127.0.0.1",18911)); s.settimeout(0.5)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"); d=b""
        while True:
            try: s.sendall(b"x")
            except Exception: break
            try:
                c=s.recv(4096)
                if not c: break
                d+=c
            except socket.timeout: pass
        seen[d.split(b"\r\n")[0].decode() or "nothing"]+=1; s.close()
ts=[threading.Thread(target=one) for _ in range(10)]
[t.start() for t in ts]; [t.join() for t in ts]
print("trickling uploads:", dict(seen))
