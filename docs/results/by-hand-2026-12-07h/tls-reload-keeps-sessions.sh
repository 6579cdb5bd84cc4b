#!/bin/bash
# TLS session resumption across a reload that changes nothing: openssl s_client saves a session,
# resumes it, the gateway is reloaded (fluxgate reload), the saved session is offered again.
s() { (sleep 0.3; echo) | openssl s_client -connect 127.0.0.1:18443 -servername localhost -CAfile cert.pem "$@" 2>/dev/null | grep -E "^(New|Reused)," | head -1; }
for v in tls1_2 tls1_3; do
  echo "== -$v"
  echo -n "first:            "; s -$v -sess_out s.$v
  echo -n "resumed:          "; s -$v -sess_in s.$v
  $FLUXGATE reload --admin 127.0.0.1:19090 >/dev/null 2>&1
  echo -n "after the reload: "; s -$v -sess_in s.$v
done
