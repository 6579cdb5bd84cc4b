import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version='HTTP/1.1'
    def do_GET(self):
        b=self.path.encode(); self.send_response(200); self.send_header('content-length',str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_POST(self):
        n=int(self.headers.get('content-length',0)); b=self.rfile.read(n); self.send_response(200); self.send_header('content-length',str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self,*a): pass
socketserver.ThreadingTCPServer.allow_reuse_address=True
socketserver.ThreadingTCPServer.daemon_threads=True
socketserver.ThreadingTCPServer(('127.0.0.1',int(sys.argv[1])),H).serve_forever()
