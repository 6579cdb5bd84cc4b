#!/usr/bin/env python3
"""Echo upstream for spool_probe.py: GET answers its path, POST echoes its body —
Content-Length or chunked (decoded here; http.server does not)."""
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        b = self.path.encode(); self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_POST(self):
        if 'chunked' in self.headers.get('transfer-encoding', '').lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b''):
                        pass
                    break
                parts.append(self.rfile.read(size)); self.rfile.readline()
            b = b''.join(parts)
        else:
            b = self.rfile.read(int(self.headers.get('content-length', 0)))
        self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
