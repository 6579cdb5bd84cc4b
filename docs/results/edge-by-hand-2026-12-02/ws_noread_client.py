import socket, ssl, sys, os, time
port=int(sys.argv[1]); ctx=ssl.create_default_context(); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
s=ctx.wrap_socket(socket.create_connection(('127.0.0.1',port)))
s.sendall(b'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
print(s.recv(4096).split(b'\r\n')[0])
s.settimeout(5); data=os.urandom(1<<20); sent=0
try:
    while sent < 500<<20:
        s.sendall(data); sent+=len(data)
except Exception as e: print('stopped after', sent>>20, 'MiB:', type(e).__name__)
pid=int(sys.argv[2]); print([l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')])
