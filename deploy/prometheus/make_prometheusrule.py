#!/usr/bin/env python3
"""Writes deploy/kubernetes/monitoring/prometheusrule.yaml from alerts.yml (one source
for the rules): the same groups as a Prometheus Operator PrometheusRule.

usage: python3 deploy/prometheus/make_prometheusrule.py          # write it
       python3 deploy/prometheus/make_prometheusrule.py --check  # fail when it is stale (validate.sh)
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "alerts.yml")
OUT = os.path.join(HERE, "..", "kubernetes", "monitoring", "prometheusrule.yaml")
HEADER = """# Generated from deploy/prometheus/alerts.yml by deploy/prometheus/make_prometheusrule.py;
# edit alerts.yml and run it again (deploy/kubernetes/validate.sh fails when this is stale).
# For the Prometheus Operator: your Prometheus's ruleSelector must select it
# (kube-prometheus-stack: the label `release: <your release>`, or
# ruleSelectorNilUsesHelmValues: false). kubectl apply -f deploy/kubernetes/monitoring/
"""


def render():
    groups = yaml.safe_load(open(RULES))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "fluxgate", "labels": {"app.kubernetes.io/name": "fluxgate"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=120, allow_unicode=True)


def main():
    text = render()
    if "--check" in sys.argv[1:]:
        current = open(OUT).read() if os.path.exists(OUT) else ""
        if current != text:
            sys.exit(f"{os.path.relpath(OUT)} is stale: run python3 deploy/prometheus/make_prometheusrule.py")
        print(f"{os.path.relpath(OUT)}: in step with alerts.yml")
        return
    open(OUT, "w").write(text)
    print(f"wrote {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
