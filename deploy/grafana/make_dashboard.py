#!/usr/bin/env python3
"""Writes deploy/grafana/fluxgate.json, the Grafana dashboard for Fluxgate's /metrics.

Kept as a generator so every panel's PromQL lives in one list (PANELS) that
deploy/check-dashboard.sh evaluates against a real Prometheus scraping a gateway under
load: a query that returns nothing there is a broken panel. Run: python3 make_dashboard.py
"""
import json, os

# (title, unit, [(expr, legend)], width, description)
PANELS = [
    ("Offered, admitted and shed requests/s", "reqps", [
        ('sum(rate(fluxgate_requests_total{instance=~"$instance"}[$__rate_interval]))', "offered"),
        ('sum(rate(fluxgate_request_outcomes_total{instance=~"$instance",outcome!="shed"}[$__rate_interval]))', "admitted"),
        ('sum by (reason) (rate(fluxgate_shed_total{instance=~"$instance",mode="enforced"}[$__rate_interval]))', "shed {{reason}}"),
    ], 12, "Every request ends once; shed ones are answered 429/503 by Fluxgate without reaching an upstream."),
    ("Utilization against the target", "percentunit", [
        ('max(fluxgate_utilization{instance=~"$instance"})', "utilization (in-flight + queued) / C"),
        ('max(fluxgate_target_utilization{instance=~"$instance"})', "target (S / C)"),
        ('max(fluxgate_admission_queue_standing{instance=~"$instance"})', "standing queue (100 % = waits held to queue_delay_target)"),
    ], 12, "Above the target, requests queue; /readyz turns 503 at 0.9. Under sustained overload the queue stands and waits are held short."),
    ("In flight, queued and slots", "short", [
        ('sum(fluxgate_inflight_requests{instance=~"$instance"})', "in flight"),
        ('sum(fluxgate_queued_requests{instance=~"$instance"})', "queued"),
        ('sum(fluxgate_admission_slots{instance=~"$instance"})', "slots S"),
        ('sum(fluxgate_admission_capacity{instance=~"$instance"})', "capacity C"),
    ], 12, "S = floor(C x target_utilization); C = summed max_concurrency of the ready upstreams."),
    ("Request duration p50 / p95 / p99", "s", [
        ('histogram_quantile(0.5, sum by (le) (rate(fluxgate_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p50"),
        ('histogram_quantile(0.95, sum by (le) (rate(fluxgate_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p95"),
        ('histogram_quantile(0.99, sum by (le) (rate(fluxgate_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p99"),
    ], 12, "Head received to the end of the answer, every request (sheds included)."),
    ("Queue wait p95 / p99", "s", [
        ('histogram_quantile(0.95, sum by (le) (rate(fluxgate_queue_wait_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p95"),
        ('histogram_quantile(0.99, sum by (le) (rate(fluxgate_queue_wait_seconds_bucket{instance=~"$instance"}[$__rate_interval])))', "p99"),
    ], 12, "Time admitted requests spent in the admission queue (bounded by admission.queue_timeout)."),
    ("Responses by status class and upstream", "reqps", [
        ('sum by (status, upstream) (rate(fluxgate_requests_total{instance=~"$instance"}[$__rate_interval]))', "{{status}} {{upstream}}"),
    ], 12, "upstream=none: answered by Fluxgate itself (sheds, 413, parse errors)."),
    ("Upstream health (1 = up / in rotation)", "short", [
        ('min by (upstream) (fluxgate_upstream_up{instance=~"$instance"})', "{{upstream}} up"),
        ('min by (upstream) (fluxgate_upstream_ready{instance=~"$instance"})', "{{upstream}} in rotation"),
    ], 12, "up: enabled and passing active checks; in rotation: also not passively ejected."),
    ("Upstream in flight, ejections and flips", "short", [
        ('sum by (upstream) (fluxgate_upstream_inflight_requests{instance=~"$instance"})', "{{upstream}} in flight"),
        ('sum by (upstream) (increase(fluxgate_upstream_ejections_total{instance=~"$instance"}[5m]))', "{{upstream}} ejections (5m)"),
        ('sum by (upstream) (increase(fluxgate_upstream_ejections_overflow_total{instance=~"$instance"}[5m]))', "{{upstream}} ejections refused by the cap (5m)"),
        ('sum by (upstream, to) (increase(fluxgate_upstream_health_flips_total{instance=~"$instance"}[5m]))', "{{upstream}} flips to {{to}} (5m)"),
    ], 12, "Passive ejections (outlier detection), those max_ejection_percent refused, and health flips, from active and passive checks."),
    ("Retries and upstream failures", "reqps", [
        ('sum by (cause) (rate(fluxgate_retries_total{instance=~"$instance"}[$__rate_interval]))', "retries: {{cause}}"),
        ('sum(rate(fluxgate_retry_budget_exhausted_total{instance=~"$instance"}[$__rate_interval]))', "refused by the retry budget"),
        ('sum by (upstream, kind) (rate(fluxgate_upstream_failures_total{instance=~"$instance"}[$__rate_interval]))', "{{upstream}} failed: {{kind}}"),
        ('sum(rate(fluxgate_admission_slots_given_back_total{instance=~"$instance"}[$__rate_interval]))', "slots given back by upstreams leaving rotation"),
    ], 8, "Attempts after the first by cause (connect_failed: failover; stale_connection: a pooled connection closed and the request resent; status: 502/503/504; closed_before_head; upstream_header_timeout), the last three within retry.budget_percent; failed exchanges per upstream by kind, retried ones included. Slots given back: requests in flight on an upstream as it left rotation (a hung one's, above all) stop holding admission slots."),
    ("Dry run: would have shed", "reqps", [
        ('sum by (reason) (rate(fluxgate_shed_total{instance=~"$instance",mode="dry_run"}[$__rate_interval]))', "{{reason}}"),
    ], 8, "With a dry_run switch on, what the limiter would have refused."),
    ("Connections and config", "short", [
        ('sum(fluxgate_client_connections{instance=~"$instance"})', "client connections"),
        ('sum(fluxgate_upstream_connections_open{instance=~"$instance"})', "upstream connections"),
        ('sum(fluxgate_upstream_connections_idle{instance=~"$instance"})', "idle upstream connections"),
        ('sum by (result) (increase(fluxgate_config_reloads_total{instance=~"$instance"}[1h]))', "reloads {{result}} (1h)"),
        ('sum by (reason) (increase(fluxgate_connections_recycled_total{instance=~"$instance"}[5m]))', "client connections recycled: {{reason}} (5m)"),
        ('sum by (reason) (increase(fluxgate_upstream_connections_retired_total{instance=~"$instance"}[5m]))', "upstream connections retired: {{reason}} (5m)"),
    ], 8, "Reloads by result; a failed reload keeps the running configuration. Recycled: client connections closed after an answer at limits.max_requests_per_connection or timeouts.max_connection_age (clients reconnect, so new replicas get their share). Retired: upstream connections closed instead of pooled again at pool.max_requests_per_connection or pool.max_connection_age (the gateway connects again, so an app scaled out behind one virtual address gets its share)."),
    ("Rate limits: global tokens and client buckets", "short", [
        ('sum(fluxgate_rate_limit_tokens{instance=~"$instance"})', "global tokens available"),
        ('sum(fluxgate_rate_limit_clients_tracked{instance=~"$instance"})', "clients with a bucket"),
        ('sum(increase(fluxgate_rate_limit_clients_evicted_total{instance=~"$instance"}[5m]))', "client buckets dropped at max_clients (5m)"),
    ], 24, "Global tokens near 0: rate_limited sheds are close (rate_limit.global). Client buckets dropped at rate_limit.per_client.max_clients come back full, so a steady rate says max_clients is too small or keys are being rotated."),
    ("Cluster: shares of S, replicas, Redis", "short", [
        ('sum(fluxgate_cluster_share_slots{instance=~"$instance"})', "shares held (sum)"),
        ('max(fluxgate_cluster_slots{instance=~"$instance"})', "S (cluster)"),
        ('max(fluxgate_cluster_replicas{instance=~"$instance"})', "replicas"),
        ('sum by (limit) (fluxgate_cluster_degraded{instance=~"$instance"})', "replicas degraded: {{limit}}"),
        ('count(fluxgate_cluster_store_up{instance=~"$instance"} == 0) or vector(0)', "replicas without Redis"),
    ], 12, "Cluster mode only (docs/SCALING.md): the shares add up to at most S; degraded = running the on_store_failure fallback."),
    ("Descriptors and connection cap", "short", [
        ('sum(process_open_fds{instance=~"$instance"})', "descriptors open"),
        ('sum(process_max_fds{instance=~"$instance"})', "descriptor limit"),
        ('sum(fluxgate_client_connections{instance=~"$instance"})', "client connections"),
        ('sum(fluxgate_client_connections_limit{instance=~"$instance"})', "client connection cap"),
    ], 12, "Each proxied connection takes two descriptors (three with the embedded demo); beyond the cap new connections get 503 too_many_connections (docs/TUNING.md)."),
    ("Request bodies spooled to disk", "reqps", [
        ('sum(rate(fluxgate_request_bodies_spooled_total{instance=~"$instance"}[$__rate_interval]))', "spooled (read whole before admission)"),
        ('sum(rate(fluxgate_request_spool_refused_total{instance=~"$instance"}[$__rate_interval]))', "refused by the spool budget (streamed)"),
    ], 12, "Bodies over limits.request_buffer_bytes are read whole into a spool file before admission, so a slow uploader holds no slot; refused ones stream after admission as before (docs/SECURITY.md)."),
    ("Spool disk reserved and limit", "bytes", [
        ('sum(fluxgate_request_spool_bytes{instance=~"$instance"})', "reserved by bodies"),
        ('sum(fluxgate_request_spool_limit_bytes{instance=~"$instance"})', "limit (limits.request_spool_bytes)"),
    ], 12, "Reserved per body before its first byte is written; at the limit new large bodies stream instead (docs/TUNING.md, spool disk)."),
    ("Alerts pending and firing", "short", [
        ('count by (alertname, alertstate) (ALERTS{alertname=~"Fluxgate.*",instance=~"$instance"})', "{{alertname}} ({{alertstate}})"),
    ], 24, "The rules of deploy/prometheus/alerts.yml (docs/OPERATIONS.md, Alerts), when the Prometheus behind this dashboard loads them: how many series of each alert are pending (its condition holds, not yet for its `for:`) or firing."),
]


def dashboard():
    panels, x, y = [], 0, 0
    for index, (title, unit, targets, width, description) in enumerate(PANELS):
        if x + width > 24:
            x, y = 0, y + 8
        panel = {
            "id": index + 1, "type": "timeseries", "title": title, "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": width, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
            "targets": [
                {"refId": chr(65 + i), "expr": expr, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if title.startswith("Utilization"):
            panel["fieldConfig"]["defaults"]["max"] = 1
            panel["fieldConfig"]["defaults"]["thresholds"] = {
                "mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 0.67}, {"color": "red", "value": 0.9}]}
            panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "line"}
        panels.append(panel)
        x += width
    return {
        "title": "Fluxgate", "uid": "fluxgate", "tags": ["fluxgate", "gateway"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "instance", "type": "query", "label": "Gateway", "includeAll": True, "multi": True, "allValue": ".*",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(fluxgate_build_info, instance)", "refId": "instances"},
             "definition": "label_values(fluxgate_build_info, instance)", "refresh": 2, "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "fluxgate.json"), "w") as f:
        json.dump(dashboard(), f, indent=2)
        f.write("\n")
