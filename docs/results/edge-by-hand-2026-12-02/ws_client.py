import socket, ssl, sys, os, threading, hashlib, time
port=int(sys.argv[1]); total=int(sys.argv[2]); chunk=int(sys.argv[3])
ctx=ssl.create_default_context(); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
s=ctx.wrap_socket(socket.create_connection(('127.0.0.1',port)))
s.sendall(b'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
buf=b''
while b'\r\n\r\n' not in buf:
    buf+=s.recv(4096)
head,rest=buf.split(b'\r\n\r\n',1); print(head.split(b'\r\n')[0])
data=os.urandom(total); sent=hashlib.sha256(data).hexdigest()
got=[rest]; n=[len(rest)]
def rd():
    while n[0]<total:
        d=s.recv(1<<20)
        if not d: break
        got.append(d); n[0]+=len(d)
t=threading.Thread(target=rd); t.start(); t0=time.time()
for i in range(0,total,chunk): s.sendall(data[i:i+chunk])
t.join(60)
b=b''.join(got)
print('received',len(b),'of',total,'match',hashlib.sha256(b).hexdigest()==sent, 'in %.2fs'%(time.time()-t0))
