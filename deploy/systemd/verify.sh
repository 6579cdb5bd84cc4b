#!/usr/bin/env bash
# Static checks of deploy/systemd/fluxgate.service and fluxgate.socket (this VM does not
# boot systemd, so the units have not been run by systemd here):
#  - `systemd-analyze verify` with the binary and config paths pointed at a real binary
#    and gateway.conf.example: any word it prints (an unknown key, a bad value, a missing
#    command) fails the check — verify itself exits 0 on unknown keys;
#  - ExecStartPre checks the same --config that ExecStart serves;
#  - the socket unit listens on gateway.conf.example's listen and admin_listen;
#  - TimeoutStopSec leaves room for the drain (drain_timeout of gateway.conf.example).
# Usage: deploy/systemd/verify.sh [path to a fluxgate binary] (default: .build/release/fluxgate)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-.build/release/fluxgate}")
command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
unit=deploy/systemd/fluxgate.service
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
sed "s|/usr/local/bin/fluxgate|$bin|g; s|/etc/fluxgate/gateway.conf|$PWD/gateway.conf.example|g" "$unit" >"$w/fluxgate.service"
cp deploy/systemd/fluxgate.socket "$w/fluxgate.socket"
out=$(systemd-analyze verify "$w/fluxgate.service" "$w/fluxgate.socket" 2>&1 || true)
if [ -n "$out" ]; then echo "$out" >&2; echo "systemd-analyze verify: $unit or fluxgate.socket has problems" >&2; exit 1; fi
echo "systemd-analyze verify (service and socket): OK"
python3 - "$unit" deploy/systemd/fluxgate.socket <<'PY'
import re, sys
unit = open(sys.argv[1]).read()
socket = open(sys.argv[2]).read()
listens = re.findall(r"^ListenStream=(.*)$", socket, re.M)
conf = open("gateway.conf.example").read()
wanted = [re.search(rf'^{key}: *"([^"]+)"', conf, re.M).group(1) for key in ("listen", "admin_listen")]
assert listens == wanted, f"fluxgate.socket listens on {listens}, gateway.conf.example on {wanted}: the gateway would refuse the sockets"
print(f"fluxgate.socket's ListenStream {listens} are gateway.conf.example's listen and admin_listen: OK")
def value(key):
    m = re.search(rf"^{key}=(.*)$", unit, re.M)
    assert m, f"no {key}"
    return m.group(1)
config = lambda line: re.search(r"--config (\S+)", line).group(1)
assert "check-config" in value("ExecStartPre") and config(value("ExecStartPre")) == config(value("ExecStart")), "ExecStartPre must check the file ExecStart serves"
assert value("ExecReload").endswith("-HUP $MAINPID"), "reload is SIGHUP"
example = open("gateway.conf.example").read()
drain = re.search(r"^drain_timeout: *(\d+)s", example, re.M)
assert drain, "drain_timeout not found in gateway.conf.example"
assert int(value("TimeoutStopSec")) > int(drain.group(1)), f"TimeoutStopSec {value('TimeoutStopSec')} must exceed drain_timeout {drain.group(1)}s"
print(f"ExecStartPre checks what ExecStart serves; reload is SIGHUP; TimeoutStopSec {value('TimeoutStopSec')} s > drain_timeout {drain.group(1)} s: OK")
PY
