import socket, time, sys
port=int(sys.argv[1]); idle=float(sys.argv[2])
def readall(s, t=3):
    s.settimeout(t); out=b''
    try:
        while True:
            d=s.recv(65536)
            if not d: break
            out+=d
    except socket.timeout: out+=b'<timeout>'
    return out
for variant in ['three+shut','one+shut','three']:
    s=socket.create_connection(('127.0.0.1',port)); s.sendall(b'GET /a HTTP/1.1\r\nHost: x\r\n\r\n'); time.sleep(0.2); s.recv(4096); time.sleep(idle)
    if variant.startswith('three'):
        s.sendall(b'GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nPOST /d HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello')
    else:
        s.sendall(b'GET /b HTTP/1.1\r\nHost: x\r\n\r\n')
    if variant.endswith('shut'): s.shutdown(socket.SHUT_WR)
    r=readall(s, 2); print(variant, 'idle', idle, 'responses', r.count(b'HTTP/1.1 200'), r[-30:])
