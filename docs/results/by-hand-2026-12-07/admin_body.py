# Usage: python3 admin_body.py PORT CONNECTIONS SECONDS [CONTENT_LENGTH]: each connection
# declares a body, sends 3 bytes of it and one more every 5 s; prints how many stay open.
import socket, time, sys
port=int(sys.argv[1]); n=int(sys.argv[2]); hold=float(sys.argv[3])
length=int(sys.argv[4]) if len(sys.argv) > 4 else 1000000000000  # the declared Content-Length
socks=[]
for i in range(n):
    s=socket.create_connection(("127.0.0.1",port)); s.settimeout(0.2)
    s.sendall(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nabc" % length)
    socks.append(s)
t0=time.time(); alive=n
while time.time()-t0 < hold:
    time.sleep(5)
    alive=0
    for s in socks:
        try:
            s.sendall(b"x")
            try:
                d=s.recv(100)
                if d == b"": continue
                print("got", d[:60])
            except socket.timeout: pass
            alive+=1
        except OSError: pass
    print(f"t={time.time()-t0:.0f}s open={alive}", flush=True)
