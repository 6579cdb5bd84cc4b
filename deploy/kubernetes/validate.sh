#!/usr/bin/env bash
# Static checks of the Kubernetes manifests (there is no cluster here; they were
# never applied by this script or by CI):
#  - every manifest against the Kubernetes OpenAPI schemas (kubernetes-validate from
#    PyPI, strict: unknown fields fail) for the oldest and newest versions we name;
#  - kustomization.yaml lists files that exist;
#  - the gateway.conf inside configmap.yaml passes `fluxgate check-config`;
#  - the Prometheus adapter rule is valid YAML with the metric the HPA variant names;
#  - monitoring/ (Prometheus Operator objects): the PodMonitor selects the pods' admin
#    port as job "fluxgate", the PrometheusRule is alerts.yml's rules, up to date and
#    passing promtool check rules.
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
# Not plain /readyz (503 at utilization >= 0.9): replicas overloaded together would all
# leave the Service at once (docs/OPERATIONS.md, "Readiness on Kubernetes").
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz?ignore=utilization"
assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
import re
def seconds(text):  # the config's durations: 25s, 1m30s, 500ms
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h|d)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text}"
    return sum(float(n) * units[u] for n, u in parts)
def size(text):  # the config's sizes: 1073741824, 1g, 1GiB
    m = re.fullmatch(r"([0-9]+)(k|K|KiB|m|M|MiB|g|G|GiB)?", str(text))
    assert m, f"not a size: {text}"
    return int(m.group(1)) * {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[(m.group(2) or "")[:1].lower() or None]
# The drain must end before the kubelet kills: preStop sleep + drain_timeout < grace period.
drain = seconds(yaml.safe_load(config)["drain_timeout"])
sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
assert sleep + drain < pod["terminationGracePeriodSeconds"], (sleep, drain, pod["terminationGracePeriodSeconds"])
# With a read-only root, the request spool directory must be a volume large enough
# for limits.request_spool_bytes (unless spooling is off).
limits = yaml.safe_load(config).get("limits") or {}
spool_bytes = size(limits.get("request_spool_bytes", 1 << 30))
if container.get("securityContext", {}).get("readOnlyRootFilesystem") and spool_bytes > 0:
    spool_dir = limits.get("request_spool_dir") or "/tmp"
    mount = next((m for m in container["volumeMounts"] if m["mountPath"] == spool_dir), None)
    assert mount and not mount.get("readOnly"), f"read-only root: mount a writable volume at {spool_dir} (limits.request_spool_dir)"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    size = volume.get("emptyDir", {}).get("sizeLimit")
    if size:
        units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
        number = int(size.rstrip("KMGi")) * units.get(size[-2:], 1)
        assert number >= spool_bytes, f"the spool volume's sizeLimit {size} is below limits.request_spool_bytes {spool_bytes}"
# The Prometheus Operator objects (monitoring/, not in the kustomization: they need its
# CRDs, so kubernetes-validate has no schema for them): the PodMonitor selects these
# pods' admin port and names the job "fluxgate", which the alerting rules read.
monitor = yaml.safe_load(open("monitoring/podmonitor.yaml"))
assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
assert all(pod_labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items()), "the PodMonitor selects no gateway pod"
ports = {p["name"] for p in container["ports"]}
assert all(e["port"] in ports for e in monitor["spec"]["podMetricsEndpoints"]), "the PodMonitor names a port the container lacks"
assert pod_labels.get(monitor["spec"]["jobLabel"]) == "fluxgate", "the job label must be fluxgate (FluxgateDown reads up{job=\"fluxgate\"})"
rule = yaml.safe_load(open("monitoring/prometheusrule.yaml"))
assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
open(os.environ.get("TMPDIR", "/tmp") + "/fluxgate-k8s-rules.yml", "w").write(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
print("kustomization, adapter rule, probes, drain timing, the spool volume and the monitoring objects: OK")
PY
python3 ../prometheus/make_prometheusrule.py --check
if command -v promtool >/dev/null; then
  promtool check rules "${TMPDIR:-/tmp}/fluxgate-k8s-rules.yml"
else
  echo "promtool not installed: the PrometheusRule's groups were not checked by it (apt-get install prometheus)"
fi
conf="${TMPDIR:-/tmp}/fluxgate-k8s-gateway.conf"
# --no-resolve: the upstream and Redis names are the cluster's Services, which resolve only inside it.
if [ -n "$bin" ]; then "$bin" check-config --no-resolve --config "$conf"; else (cd ../.. && swift run -q fluxgate check-config --no-resolve --config "$conf"); fi
