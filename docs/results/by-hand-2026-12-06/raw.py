import socket,sys,time
def raw(data, port=8080, wait=2.0, chunks=None):
    s=socket.create_connection(("127.0.0.1",port)); s.settimeout(wait)
    s.sendall(data)
    out=b""
    try:
        while True:
            b=s.recv(65536)
            if not b: out+=b"<EOF>"; break
            out+=b
    except socket.timeout: out+=b"<TIMEOUT>"
    except ConnectionResetError: out+=b"<RESET>"
    s.close(); return out
if __name__=="__main__":
    d=sys.argv[1].encode().decode('unicode_escape').encode('latin1')
    print(raw(d, wait=float(sys.argv[2]) if len(sys.argv)>2 else 1.5).decode('latin1'))
