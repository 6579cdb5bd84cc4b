import socket, sys, time
pid=int(sys.argv[1]); N=int(sys.argv[2])
def rss(): return [l.split()[1] for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')][0]
print('rss before', rss())
req=b'GET /x HTTP/1.1\r\nHost: x\r\n\r\n'*2000
conns=[]
for i in range(N):
    s=socket.create_connection(('127.0.0.1',18902)); s.setblocking(False)
    sent=0
    try:
        for _ in range(200): sent+=s.send(req)
    except BlockingIOError: pass
    conns.append((s,sent))
time.sleep(3)
print('rss after', rss(), 'sent per conn (MB)', round(sum(x for _,x in conns)/N/1e6,2))
print(open('/dev/null') and __import__('urllib.request').request.urlopen('http://127.0.0.1:20902/metrics').read().decode().count('\n'))
