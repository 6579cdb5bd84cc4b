#!/usr/bin/env python3
"""Unit tests of deploy/prometheus/alerts.yml with promtool (`promtool test rules`).

Each case below gives input series and, at some evaluation times, the alerts that must
be firing (labels and rendered summary) or that none may be. Every alert must have at
least one case where it fires and one where it stays quiet, so a rule added without
tests, or one whose expression can never be true, fails here.

promtool compares annotations exactly; the expected `summary` (where the templating
is) is written out in each case, the `description` (static text, checked to be so) is
taken from the rule itself. The cases are written to a promtool test file and run.

usage: python3 deploy/prometheus/test_alerts.py   (needs promtool: Debian's prometheus)
"""
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "alerts.yml")
GW = 'instance="gw1:9090", job="fluxgate"'
LABELS = {"instance": "gw1:9090", "job": "fluxgate"}


def series(name, labels="", values=""):
    inner = GW + (", " + labels if labels else "")
    return {"series": f"{name}{{{inner}}}", "values": values}


def fires(alert, at, summary, **labels):
    return (at, alert, [dict(LABELS, **labels)], [summary])


def quiet(alert, at):
    return (at, alert, [], [])


# Counters below grow per 1-minute step: 0+600x20 is 10 per second.
CASES = [
    ("scrape failing", [
        {"series": 'up{instance="gw1:9090", job="fluxgate"}', "values": "1 1 0 0 0 0"},
    ], [
        quiet("FluxgateDown", "2m"),  # down since 2m: pending for its minute
        fires("FluxgateDown", "4m", "Fluxgate gw1:9090 does not answer scrapes", severity="critical"),
    ]),
    ("not ready", [
        series("fluxgate_ready", "", "0x10"),
        series("fluxgate_draining", "", "0x10"),
    ], [
        quiet("FluxgateNotReady", "1m"),
        fires("FluxgateNotReady", "5m", "Fluxgate gw1:9090 answers /readyz with 503", severity="critical"),
    ]),
    ("not ready because draining", [
        series("fluxgate_ready", "", "0x10"),
        series("fluxgate_draining", "", "1x10"),
    ], [
        quiet("FluxgateNotReady", "5m"),
    ]),
    ("no upstream in rotation; a down and b ejected", [
        series("fluxgate_upstream_ready", 'upstream="a"', "0x10"),
        series("fluxgate_upstream_ready", 'upstream="b"', "0x10"),
        series("fluxgate_upstream_up", 'upstream="a"', "0x10"),
        series("fluxgate_upstream_up", 'upstream="b"', "1x10"),
    ], [
        fires("FluxgateNoUpstreamInRotation", "2m", "Fluxgate gw1:9090 has no upstream in rotation", severity="critical"),
        quiet("FluxgateUpstreamDown", "1m"),
        fires("FluxgateUpstreamDown", "3m", "Upstream a is down on gw1:9090", severity="warning", upstream="a"),
        quiet("FluxgateUpstreamEjected", "4m"),
        fires("FluxgateUpstreamEjected", "6m", "Upstream b keeps being ejected on gw1:9090", severity="warning", upstream="b"),
    ]),
    ("a query of death: ejections refused by the cap", [
        series("fluxgate_upstream_ejections_overflow_total", 'upstream="b"', "0 0 0 5 40 90 90 90 90 90 90 90 90 90 90 90 90"),
        series("fluxgate_upstream_ejections_overflow_total", 'upstream="a"', "0x16"),
    ], [
        quiet("FluxgateEjectionCapReached", "2m"),
        fires("FluxgateEjectionCapReached", "5m",
              "Upstream b failed enough to be ejected, but max_ejection_percent was reached, on gw1:9090", severity="warning", upstream="b"),
        quiet("FluxgateEjectionCapReached", "16m"),  # none refused for over 10 minutes
    ]),
    ("one of two upstreams in rotation", [
        series("fluxgate_upstream_ready", 'upstream="a"', "1x10"),
        series("fluxgate_upstream_ready", 'upstream="b"', "0x10"),
        series("fluxgate_upstream_up", 'upstream="a"', "1x10"),
        series("fluxgate_upstream_up", 'upstream="b"', "0x10"),
    ], [
        quiet("FluxgateNoUpstreamInRotation", "5m"),
        quiet("FluxgateUpstreamEjected", "8m"),  # b is down, not ejected
    ]),
    ("shedding 1 in 11 for capacity", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x20"),
        series("fluxgate_requests_total", 'route="normal", status="5xx", upstream="none"', "0+60x20"),
        series("fluxgate_shed_total", 'reason="overloaded", mode="enforced"', "0+60x20"),
        series("fluxgate_shed_total", 'reason="rate_limited", mode="enforced"', "0x20"),
        series("fluxgate_shed_total", 'reason="overloaded", mode="dry_run"', "0x20"),
    ], [
        quiet("FluxgateSheddingForCapacity", "6m"),  # over 5 % since 1m; 10 minutes to go
        fires("FluxgateSheddingForCapacity", "15m",
              "Fluxgate gw1:9090 sheds 9.091% of requests for lack of capacity", severity="warning"),
        quiet("FluxgateRateLimiting", "15m"),
        quiet("FluxgateDryRunWouldShed", "15m"),
    ]),
    ("shedding 1 in 51 for capacity, 1 in 6 by the global rate limit", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x20"),
        series("fluxgate_requests_total", 'route="normal", status="4xx", upstream="none"', "0+120x20"),
        series("fluxgate_requests_total", 'route="normal", status="5xx", upstream="none"', "0+12x20"),
        series("fluxgate_shed_total", 'reason="overloaded", mode="enforced"', "0+12x20"),
        series("fluxgate_shed_total", 'reason="rate_limited", mode="enforced"', "0+120x20"),
    ], [
        quiet("FluxgateSheddingForCapacity", "15m"),
        fires("FluxgateRateLimiting", "15m",
              "Fluxgate gw1:9090 answers 16.39% of requests 429 by the global rate limit", severity="info"),
    ]),
    ("a dry run that would shed 1 in 10", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x30"),
        series("fluxgate_shed_total", 'reason="overloaded", mode="dry_run"', "0+60x30"),
        series("fluxgate_shed_total", 'reason="overloaded", mode="enforced"', "0x30"),
    ], [
        quiet("FluxgateDryRunWouldShed", "10m"),
        fires("FluxgateDryRunWouldShed", "25m",
              "Admission control in dry run would refuse 10% of requests on gw1:9090", severity="info"),
        quiet("FluxgateSheddingForCapacity", "25m"),
    ]),
    ("a standing queue", [
        series("fluxgate_admission_queue_standing", "", "0 1x10"),
    ], [
        quiet("FluxgateStandingQueue", "4m"),
        fires("FluxgateStandingQueue", "7m",
              "Fluxgate gw1:9090 has had a standing admission queue for 5 minutes", severity="warning"),
    ]),
    ("upstream a fails 1 in 10 exchanges, b 1 in 100; a sends invalid responses once", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x20"),
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="b"', "0+600x20"),
        series("fluxgate_upstream_failures_total", 'upstream="a", kind="5xx"', "0+60x20"),
        series("fluxgate_upstream_failures_total", 'upstream="b", kind="reset"', "0+6x20"),
        series("fluxgate_upstream_failures_total", 'upstream="a", kind="malformed"', "0 0 0 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3"),
        series("fluxgate_upstream_failures_total", 'upstream="b", kind="malformed"', "0x20"),
    ], [
        quiet("FluxgateUpstreamFailing", "4m"),
        fires("FluxgateUpstreamFailing", "10m", "Upstream a fails 10% of its exchanges on gw1:9090",
              severity="warning", upstream="a"),
        quiet("FluxgateUpstreamInvalidResponses", "2m"),
        fires("FluxgateUpstreamInvalidResponses", "4m",
              "Upstream a sent responses that are not valid HTTP/1.1 on gw1:9090",
              severity="warning", upstream="a", kind="malformed"),
        quiet("FluxgateUpstreamInvalidResponses", "15m"),  # none for 10 minutes
    ]),
    ("gateway answers 1 in 51, cut-offs 1 in 201", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x20"),
        series("fluxgate_requests_total", 'route="normal", status="5xx", upstream="a"', "0+12x20"),
        series("fluxgate_requests_total", 'route="normal", status="none", upstream="a"', "0+3x20"),
        series("fluxgate_request_outcomes_total", 'outcome="gateway_answer"', "0+12x20"),
        series("fluxgate_request_outcomes_total", 'outcome="cut_off"', "0+3x20"),
    ], [
        quiet("FluxgateGatewayErrors", "3m"),
        fires("FluxgateGatewayErrors", "10m", "Fluxgate gw1:9090 itself answers 1.951% of requests with an error",
              severity="warning"),
        quiet("FluxgateResponsesCutOff", "15m"),
    ]),
    ("cut-offs 1 in 41", [
        series("fluxgate_requests_total", 'route="normal", status="2xx", upstream="a"', "0+600x20"),
        series("fluxgate_requests_total", 'route="normal", status="none", upstream="a"', "0+15x20"),
        series("fluxgate_request_outcomes_total", 'outcome="cut_off"', "0+15x20"),
        series("fluxgate_request_outcomes_total", 'outcome="gateway_answer"', "0x20"),
    ], [
        fires("FluxgateResponsesCutOff", "15m", "Fluxgate gw1:9090 cuts off 2.439% of responses", severity="warning"),
        quiet("FluxgateGatewayErrors", "15m"),
    ]),
    ("retry budget exhausted, then not", [
        series("fluxgate_retry_budget_exhausted_total", "", "0+1x12 12x20"),
    ], [
        fires("FluxgateRetryBudgetExhausted", "10m", "Fluxgate gw1:9090 has run out of retry budget for 5 minutes",
              severity="warning"),
        quiet("FluxgateRetryBudgetExhausted", "25m"),
    ]),
    ("p99 between 1 s and 2.5 s", [
        series("fluxgate_request_duration_seconds_bucket", 'le="0.5"', "0x20"),
        series("fluxgate_request_duration_seconds_bucket", 'le="1"', "0x20"),
        series("fluxgate_request_duration_seconds_bucket", 'le="2.5"', "0+60x20"),
        series("fluxgate_request_duration_seconds_bucket", 'le="+Inf"', "0+60x20"),
    ], [
        quiet("FluxgateSlowResponses", "5m"),
        fires("FluxgateSlowResponses", "15m", "Fluxgate gw1:9090: p99 request duration 2.485s", severity="info"),
    ]),
    ("p99 under 0.5 s", [
        series("fluxgate_request_duration_seconds_bucket", 'le="0.5"', "0+60x20"),
        series("fluxgate_request_duration_seconds_bucket", 'le="+Inf"', "0+60x20"),
    ], [
        quiet("FluxgateSlowResponses", "15m"),
    ]),
    ("resources near their limits", [
        series("fluxgate_client_connections", "", "900x10"),
        series("fluxgate_client_connections_limit", "", "1000x10"),
        series("fluxgate_stalled_client_bytes", "", "240000000x10"),
        series("fluxgate_stalled_client_limit_bytes", "", "268435456x10"),
        series("fluxgate_request_spool_bytes", "", "900000000x10"),
        series("fluxgate_request_spool_limit_bytes", "", "1073741824x10"),
        series("process_open_fds", "", "900x10"),
        series("process_max_fds", "", "1000x10"),
        series("fluxgate_build_info", 'version="0.2.0"', "1x10"),
        # another exporter's process metrics on the same Prometheus: not Fluxgate's
        {"series": 'process_open_fds{instance="node1:9100", job="node"}', "values": "990x10"},
        {"series": 'process_max_fds{instance="node1:9100", job="node"}', "values": "1000x10"},
    ], [
        quiet("FluxgateClientConnectionsNearLimit", "3m"),
        fires("FluxgateClientConnectionsNearLimit", "6m", "Fluxgate gw1:9090 holds 90% of limits.max_connections",
              severity="warning"),
        fires("FluxgateStalledClientMemoryHigh", "6m",
              "Memory held for slow clients on gw1:9090 is at 89.41% of limits.stalled_client_bytes", severity="warning"),
        fires("FluxgateRequestSpoolNearFull", "6m", "The request spool on gw1:9090 is 83.82% full", severity="warning"),
        fires("FluxgateDescriptorsNearLimit", "6m", "Fluxgate gw1:9090 uses 90% of its descriptor limit",
              severity="warning"),
    ]),
    ("resources well within, or unbounded (limit 0)", [
        series("fluxgate_client_connections", "", "900x10"),
        series("fluxgate_client_connections_limit", "", "0x10"),
        series("fluxgate_stalled_client_bytes", "", "240000000x10"),
        series("fluxgate_stalled_client_limit_bytes", "", "0x10"),
        series("fluxgate_request_spool_bytes", "", "1000x10"),
        series("fluxgate_request_spool_limit_bytes", "", "1073741824x10"),
        series("process_open_fds", "", "500x10"),
        series("process_max_fds", "", "1000x10"),
        series("fluxgate_build_info", 'version="0.2.0"', "1x10"),
    ], [
        quiet("FluxgateClientConnectionsNearLimit", "8m"),
        quiet("FluxgateStalledClientMemoryHigh", "8m"),
        quiet("FluxgateRequestSpoolNearFull", "8m"),
        quiet("FluxgateDescriptorsNearLimit", "8m"),
    ]),
    ("connections refused and access-log lines dropped at 3m", [
        series("fluxgate_connections_refused_total", 'reason="max_connections"', "0 0 0 5x20"),
        series("fluxgate_connections_refused_total", 'reason="max_connections_per_client"', "0 0 0 50x20"),
        series("fluxgate_access_log_dropped_total", 'reason="behind"', "0 0 0 10x20"),
        series("fluxgate_access_log_dropped_total", 'reason="write_failed"', "0x20"),
    ], [
        quiet("FluxgateConnectionsRefused", "2m"),
        fires("FluxgateConnectionsRefused", "4m",
              "Fluxgate gw1:9090 refused 5 client connections at limits.max_connections in 5 minutes",
              severity="warning", reason="max_connections"),
        quiet("FluxgateConnectionsRefused", "10m"),
        quiet("FluxgateAccessLogDropping", "2m"),
        fires("FluxgateAccessLogDropping", "4m", "Fluxgate gw1:9090 lost 10 access log lines (behind)", severity="warning", reason="behind"),
        quiet("FluxgateAccessLogDropping", "10m"),
    ]),
    ("a failed reload", [
        series("fluxgate_config_reloads_total", 'result="error"', "0 0 1x30"),
        series("fluxgate_config_reloads_total", 'result="success"', "0 1 1x30"),
    ], [
        quiet("FluxgateReloadFailed", "1m"),
        fires("FluxgateReloadFailed", "5m", "A configuration reload failed on gw1:9090", severity="warning",
              result="error"),
        quiet("FluxgateReloadFailed", "20m"),
    ]),
    ("three restarts in 15 minutes, and another exporter's restarts", [
        series("process_start_time_seconds", "", "100 100 220 220 340 340 460x10"),
        series("fluxgate_build_info", 'version="0.2.0"', "1x16"),
        {"series": 'process_start_time_seconds{instance="node1:9100", job="node"}', "values": "1 2 3 4 5 6x10"},
    ], [
        quiet("FluxgateRestarting", "5m"),
        fires("FluxgateRestarting", "6m", "Fluxgate gw1:9090 restarted 3 times in 15 minutes", severity="warning"),
    ]),
    # promtool's time() is the evaluation time since 1970: the certificate below ends 10
    # days after it, until a renewal at 31m moves its end to 30 days.
    ("a certificate 10 days from its end, then renewed", [
        series("fluxgate_tls_certificate_expiry_timestamp_seconds", "", "864000x30 2592000x30"),
    ], [
        quiet("FluxgateCertificateExpiresSoon", "5m"),  # for: 10m
        fires("FluxgateCertificateExpiresSoon", "15m", "The TLS certificate of gw1:9090 expires in 9d 23h 45m 0s",
              severity="warning"),
        quiet("FluxgateCertificateExpiresSoon", "50m"),  # renewed at 30m: 30 days left
    ]),
    ("two versions for over an hour", [
        {"series": 'fluxgate_build_info{instance="gw1:9090", job="fluxgate", version="0.2.0"}', "values": "1x80"},
        {"series": 'fluxgate_build_info{instance="gw2:9090", job="fluxgate", version="0.3.0"}', "values": "1x80"},
        {"series": 'fluxgate_build_info{instance="gw3:9090", job="fluxgate", version="0.3.0"}', "values": "1x80"},
    ], [
        quiet("FluxgateVersionsDiffer", "30m"),
        (
            "65m", "FluxgateVersionsDiffer", [{"job": "fluxgate", "severity": "info"}],
            ["Replicas of fluxgate run 2 different Fluxgate versions"],
        ),
    ]),
    ("one version", [
        {"series": 'fluxgate_build_info{instance="gw1:9090", job="fluxgate", version="0.3.0"}', "values": "1x80"},
        {"series": 'fluxgate_build_info{instance="gw2:9090", job="fluxgate", version="0.3.0"}', "values": "1x80"},
    ], [
        quiet("FluxgateVersionsDiffer", "65m"),
    ]),
    ("the cluster store lost", [
        series("fluxgate_cluster_store_up", "", "1 0x10"),
        series("fluxgate_cluster_degraded", 'limit="capacity"', "0 1x10"),
        series("fluxgate_cluster_degraded", 'limit="global_rate"', "0x10"),
    ], [
        quiet("FluxgateClusterStoreDown", "1m"),
        fires("FluxgateClusterStoreDown", "3m", "Fluxgate gw1:9090 cannot reach its cluster store (Redis)",
              severity="warning"),
        quiet("FluxgateClusterDegraded", "2m"),
        fires("FluxgateClusterDegraded", "4m", "Cluster limit capacity runs its fallback on gw1:9090", severity="warning",
              limit="capacity"),
    ]),
]


def main():
    rules = {}
    for group in yaml.safe_load(open(RULES))["groups"]:
        for rule in group["rules"]:
            description = rule["annotations"]["description"]
            assert "{{" not in description, f"{rule['alert']}: keep the description static (templates go in summary)"
            rules[rule["alert"]] = description
    tests, fired, quieted = [], set(), set()
    for name, input_series, checks in CASES:
        cases = []
        for at, alert, labels, summaries in checks:
            assert alert in rules, f"{name}: no rule {alert}"
            (fired if labels else quieted).add(alert)
            cases.append({
                "eval_time": at, "alertname": alert,
                "exp_alerts": [
                    {"exp_labels": l, "exp_annotations": {"summary": s, "description": rules[alert]}}
                    for l, s in zip(labels, summaries)
                ],
            })
        tests.append({"name": name, "interval": "1m", "input_series": input_series, "alert_rule_test": cases})
    missing = [a for a in rules if a not in fired or a not in quieted]
    if missing:
        sys.exit("alerts without a firing and a quiet case: " + ", ".join(missing))
    subprocess.run(["promtool", "check", "rules", RULES], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=HERE, prefix=".alerts-test-", delete=False) as f:
        yaml.safe_dump({"rule_files": [os.path.basename(RULES)], "evaluation_interval": "1m", "tests": tests}, f,
                       sort_keys=False)
    try:
        result = subprocess.run(["promtool", "test", "rules", f.name])
    finally:
        os.unlink(f.name)
    if result.returncode != 0:
        sys.exit(result.returncode)
    print(f"{len(rules)} alerts, {len(CASES)} cases: each alert fires where it should and stays quiet where it should")


if __name__ == "__main__":
    main()
