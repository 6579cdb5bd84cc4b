#!/usr/bin/env bash
# Static checks of the Kubernetes manifests (there is no cluster here; they were
# never applied by this script or by CI):
#  - every manifest against the Kubernetes OpenAPI schemas (kubernetes-validate from
#    PyPI, strict: unknown fields fail) for the oldest and newest versions we name;
#  - kustomization.yaml lists files that exist;
#  - the gateway.conf inside configmap.yaml passes `fluxgate check-config`;
#  - the Prometheus adapter rule is valid YAML with the metric the HPA variant names.
# Usage: deploy/kubernetes/validate.sh [path to a fluxgate binary] (default: swift run).
set -euo pipefail
bin=${1:+$(realpath "$1")}
cd "$(dirname "$0")"
command -v kubernetes-validate >/dev/null || pip install -q kubernetes-validate
python3 -c "import yaml" 2>/dev/null || pip install -q pyyaml
manifests=(configmap.yaml deployment.yaml service.yaml pdb.yaml hpa.yaml hpa-custom-metric.yaml prometheus-adapter.yaml redis.yaml)
for version in 1.29.0 1.33.0; do
  kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}"
  echo "schemas $version: ${#manifests[@]} files OK"
done
python3 - <<'PY'
import os, yaml
k = yaml.safe_load(open("kustomization.yaml"))
missing = [r for r in k["resources"] if not os.path.exists(r)]
assert not missing, f"kustomization.yaml lists missing files: {missing}"
rules = yaml.safe_load(yaml.safe_load(open("prometheus-adapter.yaml"))["data"]["config.yaml"])["rules"]
assert any("fluxgate_utilization" in r["seriesQuery"] for r in rules)
hpa = yaml.safe_load(open("hpa-custom-metric.yaml"))
assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "fluxgate_utilization"
config = yaml.safe_load(open("configmap.yaml"))["data"]["gateway.conf"]
open(os.environ.get("TMPDIR", "/tmp") + "/fluxgate-k8s-gateway.conf", "w").write(config)
deployment = yaml.safe_load(open("deployment.yaml"))
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
# The drain must end before the kubelet kills: preStop sleep + drain_timeout < grace period.
drain = int(yaml.safe_load(config)["drain_timeout"].rstrip("s"))
sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
assert sleep + drain < pod["terminationGracePeriodSeconds"], (sleep, drain, pod["terminationGracePeriodSeconds"])
print("kustomization, adapter rule, probes and drain timing: OK")
PY
conf="${TMPDIR:-/tmp}/fluxgate-k8s-gateway.conf"
# --no-resolve: the upstream and Redis names are the cluster's Services, which resolve only inside it.
if [ -n "$bin" ]; then "$bin" check-config --no-resolve --config "$conf"; else (cd ../.. && swift run -q fluxgate check-config --no-resolve --config "$conf"); fi
