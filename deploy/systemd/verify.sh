#!/usr/bin/env bash
# Static checks of deploy/systemd/fluxgate.service (this VM does not boot systemd, so the
# unit has not been run by systemd here):
#  - `systemd-analyze verify` with the binary and config paths pointed at a real binary
#    and gateway.conf.example: any word it prints (an unknown key, a bad value, a missing
#    command) fails the check — verify itself exits 0 on unknown keys;
#  - ExecStartPre checks the same --config that ExecStart serves;
#  - TimeoutStopSec leaves room for the drain (drain_timeout of gateway.conf.example).
# Usage: deploy/systemd/verify.sh [path to a fluxgate binary] (default: .build/release/fluxgate)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-.build/release/fluxgate}")
command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
unit=deploy/systemd/fluxgate.service
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
sed "s|/usr/local/bin/fluxgate|$bin|g; s|/etc/fluxgate/gateway.conf|$PWD/gateway.conf.example|g" "$unit" >"$w/fluxgate.service"
out=$(systemd-analyze verify "$w/fluxgate.service" 2>&1 || true)
if [ -n "$out" ]; then echo "$out" >&2; echo "systemd-analyze verify: $unit has problems" >&2; exit 1; fi
echo "systemd-analyze verify: OK"
python3 - "$unit" <<'PY'
import re, sys
unit = open(sys.argv[1]).read()
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
