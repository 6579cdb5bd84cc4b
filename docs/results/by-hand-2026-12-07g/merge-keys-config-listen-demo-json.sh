#!/usr/bin/env bash
# By hand, session 57: YAML merge keys in a real gateway, GET /config naming serve --listen,
# the demo upstream's JSON log. BIN = the release build.
set -u
BIN=${BIN:?}; W=/tmp/bh/w; rm -rf $W; mkdir -p $W; cd $W
echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN ($(cd /work/main && git rev-parse --short HEAD))"
echo
echo "== 1. upstreams sharing settings through a YAML anchor and merge keys"
"$BIN" demo-upstream --port 19701 --instance a --workers 1 > up-a.log 2>&1 & A=$!
"$BIN" demo-upstream --port 19702 --instance b --workers 1 > up-b.log 2>&1 & Bp=$!
cat > merge.yaml <<Y
listen: "127.0.0.1:18701"
admin_listen: "127.0.0.1:19791"
x-app: &app
  max_concurrency: 200
  host_header: upstream
upstreams:
  - { <<: *app, url: "http://127.0.0.1:19701", name: app-a }
  - { <<: *app, url: "http://127.0.0.1:19702", name: app-b, weight: 2 }
Y
echo '$ cat merge.yaml'; cat merge.yaml
echo '$ fluxgate check-config --config merge.yaml'; "$BIN" check-config --config merge.yaml; echo "exit $?"
"$BIN" serve --config merge.yaml --listen 127.0.0.1:18702 > gw.log 2>&1 & G=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18702/health && break; sleep 0.1; done
echo '$ for i in 1..6: curl -s -D- 127.0.0.1:18702/health | grep x-upstream-instance'
for i in $(seq 6); do curl -s -D- -o /dev/null http://127.0.0.1:18702/health | tr -d '\r' | grep -i x-upstream-instance; done
echo '$ curl -s 127.0.0.1:19791/stats   # upstreams: name, max_concurrency, weight; then admission'
curl -s http://127.0.0.1:19791/stats | python3 -c 'import json,sys; d=json.load(sys.stdin); [print(u["name"], "max_concurrency", u["max_concurrency"], "weight", u["weight"]) for u in d["upstreams"]]; print("admission", d["admission"])' 2>&1 | head -4
echo
echo "== 2. GET /config of that gateway, started with serve --listen 127.0.0.1:18702 (the file says 18701)"
echo '$ curl -s 127.0.0.1:19791/config | head -8'; curl -s http://127.0.0.1:19791/config | head -8
echo '$ (edit: admission target_utilization 0.5) kill -HUP; curl -s 127.0.0.1:19791/config | head -8 and its admission line'
printf 'admission: { target_utilization: 0.5 }\n' >> merge.yaml; kill -HUP $G
for _ in $(seq 50); do curl -s http://127.0.0.1:19791/config | grep -q "version 2" && break; sleep 0.1; done
curl -s http://127.0.0.1:19791/config | head -8; curl -s http://127.0.0.1:19791/config | grep "target_utilization"
echo '$ curl -s 127.0.0.1:19791/config > printed.yaml; fluxgate check-config --config printed.yaml'
curl -s http://127.0.0.1:19791/config > printed.yaml; "$BIN" check-config --config printed.yaml; echo "exit $?"
kill -TERM $G; wait $G; echo "gateway exit $?"
echo
echo "== 3. a merged key misspelt in the anchor, a merge of a number, and merges that multiply"
printf 'x-app: &app\n  max_concurency: 200\nupstreams:\n  - { <<: *app, url: "http://127.0.0.1:19701" }\n' > typo.yaml
echo '$ fluxgate check-config --config typo.yaml'; "$BIN" check-config --config typo.yaml; echo "exit $?"
printf 'upstreams:\n  - { <<: 5, url: "http://127.0.0.1:19701" }\n' > number.yaml
echo '$ fluxgate check-config --config number.yaml'; "$BIN" check-config --config number.yaml; echo "exit $?"
python3 - <<P
m=['x-m0: &m0 { connect: 1s, idle: 2s }']
for i in range(1,9): m.append('x-m%d: &m%d { <<: [%s] }' % (i,i,", ".join(["*m%d"%(i-1)]*10)))
open("bomb.yaml","w").write("\n".join(m)+"\ntimeouts: *m8\n")
P
echo '$ fluxgate check-config --config bomb.yaml   # ten mappings, each merging the one before ten times (10^8 pairs)'
/usr/bin/time -f "(%e s, max RSS %M KB)" "$BIN" check-config --config bomb.yaml; echo "exit $?"
kill $A $Bp; wait $A $Bp 2>/dev/null
echo
echo "== 4. fluxgate demo-upstream's log as JSON (the Docker stack's demo containers)"
FLUXGATE_LOG_FORMAT=json "$BIN" demo-upstream --port 19703 --instance c --workers 1 2> demo-json.log & D=$!
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19703/health && break; sleep 0.1; done
kill -TERM $D; wait $D; echo "demo exit $?"
echo '$ FLUXGATE_LOG_FORMAT=json fluxgate demo-upstream --port 19703 --instance c (then SIGTERM): standard error, each line read by json.loads'
cat demo-json.log
python3 -c 'import json; [print("  json ok:", json.loads(l)["level"], json.loads(l)["message"]) for l in open("demo-json.log")]'
echo '$ fluxgate demo-upstream --log-format yaml'; "$BIN" demo-upstream --log-format yaml > bad.txt 2>&1; echo "exit $?"; head -1 bad.txt
