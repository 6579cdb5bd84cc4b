# By hand, release build: the connection count release, the idle close and the drain after this session's changes.
/work/main/.build/release/fluxgate --config gw.yaml > out.log 2> err.log & gw=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:20441/healthz && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2" kB"}' /proc/$gw/status; }
echo "config: $(tr '\n' ' ' < gw.yaml)"
echo "start rss $(rss) fds $(ls /proc/$gw/fd | wc -l)"
hey -z 8s -c 40 http://127.0.0.1:18441/health | grep -E "Requests/sec|^  \[[0-9]+\]"
echo "-- 60 connections from one client (limits.max_connections_per_client: 50), one GET each:"
python3 - <<'PY'
import socket, time
from collections import Counter
socks = [socket.create_connection(("127.0.0.1", 18441)) for _ in range(60)]
time.sleep(0.5)
answers = []
for s in socks:
    s.settimeout(2)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); answers.append(s.recv(64).split(b"\r\n")[0].decode())
    except Exception as e:
        answers.append(str(e))
print(dict(Counter(answers)))
for s in socks: s.close()
time.sleep(1)
socks = [socket.create_connection(("127.0.0.1", 18441)) for _ in range(50)]
ok = 0
for s in socks:
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); ok += s.recv(64).startswith(b"HTTP/1.1 200")
print("after closing them all, 50 new connections from the same client answered 200:", ok)
for s in socks: s.close()
PY
sleep 4
echo "after 4 s (idle timeout 3 s): $(curl -s http://127.0.0.1:20441/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])')"
echo "end rss $(rss) fds $(ls /proc/$gw/fd | wc -l)"
kill -TERM $gw; wait $gw; echo "exit code after SIGTERM: $?"; grep -E "drain" err.log | tail -2
