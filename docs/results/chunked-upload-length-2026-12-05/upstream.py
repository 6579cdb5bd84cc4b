# An upstream as Python's standard library makes one (HTTP/1.0, http.server): it reads a
# request body by its Content-Length only, as many WSGI set-ups do. POST answers with the
# number of body bytes it read and their SHA-256 prefix.
import hashlib, http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        text = f"read {len(body)} bytes sha256:{hashlib.sha256(body).hexdigest()[:12]} te={self.headers.get('Transfer-Encoding')}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(text))); self.end_headers(); self.wfile.write(text)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
