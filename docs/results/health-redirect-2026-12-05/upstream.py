# An app whose /health redirects to /health/ (a trailing-slash rule); anything else: 200 "app".
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/health":
            self.send_response(301); self.send_header("Location", "/health/"); self.send_header("Content-Length", "0"); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Length", "3"); self.end_headers(); self.wfile.write(b"app")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 19671), H).serve_forever()
