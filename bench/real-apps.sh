#!/usr/bin/env bash
# Fluxgate in front of two ordinary Python apps, as a user puts it in front of theirs:
# a Flask app under gunicorn (sync workers: every answer closes its connection, streamed
# answers chunked) and a Starlette app under uvicorn (keep-alive, server-sent events, a
# WebSocket). Each check asks the app directly and through the gateway and compares
# what the client gets; fails on any difference beyond the headers a proxy adds.
#
#   bash bench/real-apps.sh        # ~30 s after the release build; pip installs the apps' packages
#
# Checks (gunicorn):  GET with X-Forwarded-* seen by the app; a chunked stream; 5 MiB
# download (SHA-256); a 3 MB POST with `Expect: 100-continue` (curl's own) and the same
# body chunked (the app, which reads by length, must get all of it); HEAD; 304 with
# ETag; 204; a redirect's Location; two Set-Cookie fields; a percent-encoded path and
# query as the app received them; a 500 relayed as is.
# Checks (uvicorn): server-sent events arrive one by one (the first before the stream
# ends), a WebSocket echoes 1 byte and 70 000 bytes, a chunked POST.
# Then `hey -c 8` for 4 s through each gateway: every answer 200.
# Also shown (not a failure): the default health path `/health` on an app without one —
# every request 503 `no_healthy_upstream` and the log line that says why.
# Output in OUT (default: a new folder under /tmp).
#
# Needs curl, hey (apt-get install -y hey) and pip (gunicorn, uvicorn, flask, starlette, websockets).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

GA=${GA_PORT:-18801}; UA=$((GA + 10)); GB=$((GA + 20)); UB=$((GA + 30))
bench_need curl "apt-get install -y curl"
bench_need hey "apt-get install -y hey"
python3 -c "import gunicorn, uvicorn, flask, starlette, websockets" 2>/dev/null \
  || { pip install -q gunicorn uvicorn flask starlette websockets 2>&1 | grep -v "^WARNING: Running pip as" || true; }
python3 -c "import gunicorn, uvicorn, flask, starlette, websockets" \
  || { echo "the apps' Python packages are missing: pip install gunicorn uvicorn flask starlette websockets" >&2; exit 1; }
bench_ports_free "$GA" $((GA + 1)) "$UA" "$GB" $((GB + 1)) "$UB"
bench_setup real-apps
OUT=${OUT:-$W}; mkdir -p "$OUT"

cat >"$W/flaskapp.py" <<'PY'
import hashlib, time
from flask import Flask, Response, make_response, redirect, request
app = Flask(__name__)
@app.route("/")
def index(): return {"headers": dict(request.headers)}
@app.route("/stream")
def stream():
    def parts():
        for i in range(5):
            yield f"part {i}\n"; time.sleep(0.05)
    return Response(parts(), mimetype="text/plain")
@app.route("/big")
def big(): return Response(b"x" * (5 * 1024 * 1024), mimetype="application/octet-stream")
@app.route("/echo", methods=["POST"])
def echo():
    body = request.get_data()
    return {"len": len(body), "sha": hashlib.sha256(body).hexdigest()}
@app.route("/redirect")
def to_target(): return redirect("/target?x=1")
@app.route("/cookies")
def cookies():
    r = make_response("c"); r.set_cookie("a", "1"); r.set_cookie("b", "2", httponly=True); return r
@app.route("/etag")
def etag():
    r = make_response("tagged"); r.set_etag("v1"); return r.make_conditional(request)
@app.route("/nocontent")
def nocontent(): return "", 204
@app.route("/error")
def error(): return "boom", 500
@app.route("/u/<path:p>")
def raw(p): return {"raw": request.environ.get("RAW_URI")}
PY
cat >"$W/starapp.py" <<'PY'
import asyncio
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
async def index(request): return JSONResponse({"ok": True})
async def sse(request):
    async def events():
        for i in range(5):
            yield f"data: {i}\n\n"; await asyncio.sleep(0.25)
    return StreamingResponse(events(), media_type="text/event-stream")
async def echo(request): return JSONResponse({"len": len(await request.body())})
async def ws(socket):
    await socket.accept()
    async for message in socket.iter_text():
        await socket.send_text("echo:" + message)
app = Starlette(routes=[Route("/", index), Route("/sse", sse), Route("/echo", echo, methods=["POST"]),
                        WebSocketRoute("/ws", ws)])
PY
(cd "$W" && exec gunicorn -w 2 -b "127.0.0.1:$UA" flaskapp:app) >"$OUT/gunicorn.log" 2>&1 & pids+=($!)
(cd "$W" && exec uvicorn --no-access-log --host 127.0.0.1 --port "$UB" starapp:app) >"$OUT/uvicorn.log" 2>&1 & pids+=($!)
gateway_config() {  # PORT UPSTREAM_PORT HEALTH_PATH
  cat <<YAML
listen: "127.0.0.1:$1"
admin_listen: "127.0.0.1:$(($1 + 1))"
demo: { enabled: false }
health_check: { path: "$3" }
upstreams:
  - { name: app, url: "http://127.0.0.1:$2", max_concurrency: 50 }
YAML
}
bench_wait gunicorn "$UA" /; bench_wait uvicorn "$UB" /

failed=0
say() { echo "$*" | tee -a "$OUT/checks.txt"; }
check() {  # NAME DIRECT THROUGH
  local direct through  # on one line each: a head's fields joined by " | "
  direct=$(printf '%s' "$2" | paste -sd'|' | sed 's/|/ | /g'); through=$(printf '%s' "$3" | paste -sd'|' | sed 's/|/ | /g')
  if [ "$2" = "$3" ]; then say "ok    $1: $through"; else say "FAIL  $1: direct '$direct', through the gateway '$through'"; failed=1; fi
}

# The default health path on an app that has none.
gateway_config "$GA" "$UA" /health >"$W/default.yaml"
"$BIN" --config "$W/default.yaml" >"$OUT/gateway-default-health.log" 2>&1 & gw=$!; pids+=($gw)
bench_wait fluxgate $((GA + 1)) /healthz
for _ in $(seq 50); do grep -q "upstream down" "$OUT/gateway-default-health.log" && break; sleep 0.1; done
say "shown: health_check.path /health on an app without it: $(curl -s -o /dev/null -w '%{http_code} %header{x-fluxgate-shed}' "http://127.0.0.1:$GA/")"
say "       log: $(grep -o 'reason=health check failed[^[]*' "$OUT/gateway-default-health.log" | head -1)"
kill "$gw"; wait "$gw" 2>/dev/null || true

gateway_config "$GA" "$UA" / >"$W/a.yaml"
gateway_config "$GB" "$UB" / >"$W/b.yaml"
"$BIN" --config "$W/a.yaml" >"$OUT/gateway-gunicorn.log" 2>&1 & pids+=($!)
"$BIN" --config "$W/b.yaml" >"$OUT/gateway-uvicorn.log" 2>&1 & pids+=($!)
bench_wait fluxgate "$GA" /; bench_wait fluxgate "$GB" /
for _ in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GA/" | grep -q 200 && break; sleep 0.1; done

A=http://127.0.0.1:$UA; GWA=http://127.0.0.1:$GA
# What a client sees of an answer: status line and the fields, minus the ones a proxy
# may change (Date, Server, Connection: gunicorn closes every connection; we keep it).
head_of() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | grep -v '^$' | grep -viE '^(date|server|connection|x-request-id):' | sed 's/^HTTP\/1\.[01]/HTTP/' | sort; }
body_sha() { curl -s "$@" | sha256sum | cut -c1-16; }
say "$(gunicorn --version 2>&1 | head -1), flask $(python3 -c 'import flask, importlib.metadata as m; print(m.version("flask"))'):"
seen=$(curl -s "$GWA/" | python3 -c 'import json, sys; h = json.load(sys.stdin)["headers"]; print(h.get("X-Forwarded-For"), h.get("X-Forwarded-Proto"), h.get("Host"))')
check "the app sees X-Forwarded-For, -Proto and the client's Host" "127.0.0.1 http 127.0.0.1:$GA" "$seen"
check "chunked stream (body)" "$(curl -s "$A/stream")" "$(curl -s "$GWA/stream")"
check "chunked stream (head)" "$(head_of "$A/stream")" "$(head_of "$GWA/stream")"
check "5 MiB download" "$(body_sha "$A/big")" "$(body_sha "$GWA/big")"
head -c 3000000 /dev/urandom >"$W/up.bin"
want=$(sha256sum "$W/up.bin" | cut -d' ' -f1)
got=$(curl -s -X POST --data-binary @"$W/up.bin" "$GWA/echo" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sha"])')
check "3 MB POST with Expect: 100-continue" "$want" "$got"
got=$(curl -s -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$W/up.bin" "$GWA/echo" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sha"])')
check "3 MB POST chunked (the app reads by length)" "$want" "$got"
check "HEAD" "$(head_of -I "$A/cookies")" "$(head_of -I "$GWA/cookies")"
check "304 with ETag" "$(head_of -H 'If-None-Match: "v1"' "$A/etag")" "$(head_of -H 'If-None-Match: "v1"' "$GWA/etag")"
check "204" "$(head_of "$A/nocontent")" "$(head_of "$GWA/nocontent")"
check "redirect" "$(head_of "$A/redirect")" "$(head_of "$GWA/redirect")"
check "two Set-Cookie" "$(head_of "$A/cookies" | grep -ci '^set-cookie')" "$(head_of "$GWA/cookies" | grep -ci '^set-cookie')"
path='/u/a%20b/c%2Fd/%E2%82%AC?x=%41&y=1+2&z=a%26b'
check "percent-encoded path and query" "$(curl -s "$A$path")" "$(curl -s "$GWA$path")"
check "500 relayed" "$(head_of "$A/error") $(curl -s "$A/error")" "$(head_of "$GWA/error") $(curl -s "$GWA/error")"

B=http://127.0.0.1:$UB; GWB=http://127.0.0.1:$GB
say "uvicorn $(python3 -c 'import importlib.metadata as m; print(m.version("uvicorn"))'), starlette $(python3 -c 'import importlib.metadata as m; print(m.version("starlette"))'):"
# Each event with the seconds since the request; the stream lasts ~1.25 s.
events=$(python3 - "$GB" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
start = time.monotonic(); c.request("GET", "/sse"); r = c.getresponse()
seen = []
while True:
    line = r.fp.readline()
    if not line: break
    if line.startswith(b"data:"): seen.append((line.strip().decode(), time.monotonic() - start))
    if len(seen) == 5: break
print(" ".join(d for d, _ in seen), "| first after %.2f s, last after %.2f s" % (seen[0][1], seen[-1][1]), file=sys.stderr)
print("one by one" if seen[0][1] < 0.5 and seen[-1][1] > 0.9 else "buffered", " ".join(d for d, _ in seen))
PY
)
check "server-sent events" "one by one data: 0 data: 1 data: 2 data: 3 data: 4" "$events"
ws=$(python3 - "$GB" <<'PY'
import asyncio, sys, websockets
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/ws", max_size=None) as socket:
        out = []
        for message in ["a", "b" * 70000]:
            await socket.send(message); out.append(len(await socket.recv()))
        print(*out)
asyncio.run(main())
PY
)
check "WebSocket echo (lengths)" "6 70005" "$ws"
check "3 MB POST chunked" '{"len":3000000}' "$(curl -s -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$W/up.bin" "$GWB/echo")"

for g in "$GA gunicorn" "$GB uvicorn"; do
  set -- $g
  hey -z 4s -c 8 "http://127.0.0.1:$1/" >"$OUT/hey-$2.txt" 2>&1
  codes=$(sed -n '/Status code distribution/,$p' "$OUT/hey-$2.txt" | grep -E '^\s+\[' | tr -s ' \t' ' ')
  if [ -n "$codes" ] && ! echo "$codes" | grep -vq '^ \[200\]' && ! grep -q "^Error distribution" "$OUT/hey-$2.txt"; then
    say "ok    hey -c 8 for 4 s through the gateway to $2:$codes"
  else
    say "FAIL  hey -c 8 for 4 s through the gateway to $2: $codes"; failed=1
  fi
done
echo "raw output: $OUT"
[ "$failed" = 0 ] && echo "PASS" || { echo "FAILED"; exit 1; }
