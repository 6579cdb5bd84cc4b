#!/usr/bin/env bash
# By hand, release build, as root: an upstream given by a name in /etc/hosts, moved from
# 127.0.0.1 to 127.0.0.2 at +4 s and removed from /etc/hosts at +8 s, with dns.refresh 1s,
# under a keep-alive client that checks every answer. Restores /etc/hosts on exit.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.build/release/fluxgate}; W=$(mktemp -d)
cp /etc/hosts "$W/hosts.orig"
trap 'cp "$W/hosts.orig" /etc/hosts; kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
echo "127.0.0.1 fluxgate-dns-probe" >> /etc/hosts
$BIN demo-upstream --host 127.0.0.1 --port 19731 --instance a --workers 1 > "$W/a.log" 2>&1 &
$BIN demo-upstream --host 127.0.0.2 --port 19731 --instance b --workers 1 > "$W/b.log" 2>&1 &
cat > "$W/gw.yaml" <<C
listen: "127.0.0.1:18731"
admin_listen: "127.0.0.1:20731"
workers: 1
reload: { watch: false }
upstreams: [{ name: probe, url: "http://fluxgate-dns-probe:19731" }]
rate_limit: { global: { enabled: false }, per_client: { enabled: false } }
health_check: { interval: 1s }
dns: { refresh: 1s }
demo: { enabled: false }
C
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.2:19731/health && break; sleep 0.1; done
$BIN --config "$W/gw.yaml" > "$W/gw.log" 2>&1 &
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:20731/healthz && break; sleep 0.1; done
python3 - "$W" <<'PY'
import http.client, json, sys, time
work = sys.argv[1]
conn = http.client.HTTPConnection("127.0.0.1", 18731, timeout=5)
t0 = time.monotonic(); per_second = {}; errors = {}; moved = removed = False
while (t := time.monotonic() - t0) < 12:
    if t >= 4 and not moved:
        text = open("/etc/hosts").read().replace("127.0.0.1 fluxgate-dns-probe", "127.0.0.2 fluxgate-dns-probe")
        open("/etc/hosts", "w").write(text); moved = True; print(f"+{t:5.2f} s  /etc/hosts: fluxgate-dns-probe -> 127.0.0.2")
    if t >= 8 and not removed:
        text = open("/etc/hosts").read().replace("127.0.0.2 fluxgate-dns-probe\n", "")
        open("/etc/hosts", "w").write(text); removed = True; print(f"+{t:5.2f} s  /etc/hosts: fluxgate-dns-probe removed")
    try:
        conn.request("GET", "/api/status")
        r = conn.getresponse(); r.read()
        key = r.getheader("x-upstream-instance") if r.status == 200 else f"status {r.status}"
    except Exception as e:
        key = f"error {type(e).__name__}"; conn = http.client.HTTPConnection("127.0.0.1", 18731, timeout=5)
    per_second.setdefault(int(t), {}).setdefault(key, 0)
    per_second[int(t)][key] += 1
for second, counts in sorted(per_second.items()):
    print(f"second {second:2}: {json.dumps(counts, sort_keys=True)}")
PY
echo "== gateway log (address and resolution lines)"
grep -E "address changed|resolve" "$W/gw.log" | sed 's/^[^ ]* //'
echo "== config version: $(curl -s http://127.0.0.1:20731/metrics | awk '$1=="fluxgate_config_version" {print $2}')"
