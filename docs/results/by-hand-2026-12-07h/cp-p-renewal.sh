#!/usr/bin/env bash
# A renewal copied with `cp -p` from files that carry the old files' modification times and sizes (same-size
# P-256 certificate and key, `touch -r`): only the change time moves. The watch (reload.watch, 100 ms) must
# serve the new certificate. The served certificate's SHA-256 before and after, by openssl s_client.
set -u
BIN=${BIN:-/work/main/.build/release/fluxgate}; cd /tmp/ct
printf 'listen: "127.0.0.1:18444"\nadmin_listen: "127.0.0.1:19444"\nreload: { interval: 100ms }\ntls: { certificate: cert.pem, key: key.pem }\ndemo: { enabled: true }\n' > gw.yaml
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD))"
served() { echo | openssl s_client -connect 127.0.0.1:18444 -servername localhost 2>/dev/null | openssl x509 -outform der 2>/dev/null | sha256sum | cut -c1-16; }
$BIN --config gw.yaml > gw.log 2>&1 & G=$!
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19444/readyz)" = 200 ] && break; sleep 0.1; done
echo "cert.pem:  $(openssl x509 -in cert.pem -outform der | sha256sum | cut -c1-16) $(stat -c '%s bytes, mtime %y, inode %i' cert.pem)"
echo "cert2.pem: $(openssl x509 -in cert2.pem -outform der | sha256sum | cut -c1-16) $(stat -c '%s bytes, mtime %y' cert2.pem)"
echo "served before: $(served)"
cp -p key2.pem key.pem; cp -p cert2.pem cert.pem
echo "after cp -p:  cert.pem $(stat -c '%s bytes, mtime %y, inode %i' cert.pem)"
for _ in $(seq 50); do [ "$(served)" = "$(openssl x509 -in cert2.pem -outform der | sha256sum | cut -c1-16)" ] && break; sleep 0.1; done
echo "served after:  $(served)"
grep -E "reloaded|refused" gw.log
kill $G; wait 2>/dev/null
