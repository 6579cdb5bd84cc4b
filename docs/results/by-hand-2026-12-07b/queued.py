# Holder takes the one slot (GET /hold, 5 s), the config is reloaded with timeouts.request: 1s,
# then GET /q waits in the queue (queue_timeout 10 s): what answers it, and when.
import socket, time, subprocess, urllib.request
def send(path):
    s=socket.create_connection(("127.0.0.1",18911)); s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()); return s
holder=send("/hold"); time.sleep(0.3)
open("/tmp/gwq.yaml","a").write("timeouts:\n  request: 1s\n")
print("reload:", urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:18912/reload", method="POST")).read().decode().split('"result" : ')[1].split(",")[0])
t0=time.time(); q=send("/q"); q.settimeout(8); d=q.recv(65536)
print("GET /q answered after %.2f s:" % (time.time()-t0)); print(d.decode(errors="replace"))
holder.settimeout(8); print("holder:", holder.recv(65536).split(b"\r\n")[0].decode())
