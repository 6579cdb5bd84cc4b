# An upstream that answers /hold after 5 s and anything else at once (127.0.0.1:19911)
import socket, threading, time
srv=socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1",19911)); srv.listen(64)
def h(c):
    buf=b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d=c.recv(65536)
                if not d: return
                buf+=d
            head,_,buf=buf.partition(b"\r\n\r\n")
            if b" /hold " in head.split(b"\r\n")[0]: time.sleep(5)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    finally: c.close()
while True:
    c,_=srv.accept(); threading.Thread(target=h,args=(c,),daemon=True).start()
