"""Upstreams that die on one request: answer 200 to everything but /qod, and on /qod
close the connection without an answer (as a replica whose worker crashes on a
"query of death" would). One process, one thread per port, keep-alive HTTP/1.1.

    python3 bench/qod_upstream.py PORT...
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Head and body go out in two writes: without TCP_NODELAY, Nagle's algorithm
        # and the delayed ACK hold the body ~40 ms (≈ 400 answers/s on 16 connections).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path.startswith("/qod"):
                self.close_connection = True  # closed unanswered
                return
            body = b'{"instance":"%d"}' % port
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    threads = [threading.Thread(target=serve, args=(int(p),), daemon=True) for p in sys.argv[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
