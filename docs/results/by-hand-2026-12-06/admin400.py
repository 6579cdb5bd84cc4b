import time,sys
from raw import raw
port=int(sys.argv[1])
for name,req in [("a TLS ClientHello's first bytes", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00"*50),
                 ("a 200 KB header line", b"GET /stats HTTP/1.1\r\nHost: x\r\nX: "+b"a"*200000+b"\r\n\r\n")]:
    t=time.time()
    out=raw(req, port=port, wait=40)
    print(f"--- {name} to 127.0.0.1:{port}: connection ended after {time.time()-t:.2f} s; what came back:")
    print(out.decode('latin1'))
