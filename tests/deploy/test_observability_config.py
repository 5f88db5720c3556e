"""Prometheus' alert rules and Grafana's dashboard parse and read only the metrics of the agreed contract.

promtool is not available here: the rules are checked with PyYAML (well-formed, every rule named with a non-empty
expression) and every metric name in an expression is looked up in CONTRACT (issue 15's metric names, the
Temporal SDK's as a worker really serves them, and Prometheus' own `up`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY

# The Temporal SDK's families seen on a worker's /metrics (counters_total_suffix=True; durations in ms).
TEMPORAL_SDK = {
    "temporal_activity_execution_failed_total",
    "temporal_activity_execution_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_succeed_endtoend_latency",
    "temporal_activity_task_received_total",
    "temporal_request_total",
    "temporal_request_latency",
    "temporal_long_request_total",
    "temporal_long_request_latency",
    "temporal_num_pollers",
    "temporal_sticky_cache_hit_total",
    "temporal_sticky_cache_size",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_workflow_completed_total",
    "temporal_workflow_endtoend_latency",
    "temporal_workflow_task_execution_latency",
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_workflow_task_queue_poll_succeed_total",
}
# Issue 15's agreed names: the worker's business counters, the API's gauges and requests, the dispatcher's.
ENGINE = {
    "cx_events_total",
    "cx_held_cents_total",
    "cx_paid_cents_total",
    "cx_budget_cents",
    "cx_exchanges",
    "cx_exchanges_late",
    "cx_gauges_refreshed_timestamp_seconds",
    "cx_dispatcher_deliveries_total",
    "cx_dispatcher_delivery_seconds",
    "cx_outbox_backlog",
    "cx_outbox_oldest_age_seconds",
    "cx_outbox_dead",
    "cx_http_requests_total",
    "cx_http_request_seconds",
    "cx_reconcile_differences_total",  # issue 17, item 4: the nightly reconciliation's findings, by kind
}
HISTOGRAMS = {
    name for name in TEMPORAL_SDK | ENGINE if name.endswith(("_latency", "_seconds")) and "timestamp" not in name
}
CONTRACT = TEMPORAL_SDK | ENGINE | {"up"} | {f"{h}_{part}" for h in HISTOGRAMS for part in ("bucket", "sum", "count")}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords, labels or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals (label values, legend text)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return {name for name in names if name not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?|e\d*|Inf|NaN", name)}


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "clusterxchange.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_name_extraction_sees_names_and_only_names() -> None:
    """The check's own parser: functions, keywords, labels, durations and strings are not metric names."""
    expr = 'histogram_quantile(0.95, sum by (le, x) (rate(a_bucket{s="b_c"}[5m]))) / ignoring(s) b > 1e3 and on(p) c'
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_an_unknown_metric_is_caught() -> None:
    """The check can fail: a misspelt name (cx_outbox_backlogs) is not in the contract."""
    assert metric_names("sum(cx_outbox_backlogs)") - CONTRACT == {"cx_outbox_backlogs"}


def test_the_alert_rules_are_well_formed() -> None:
    """Each rule has a unique alert name, a non-empty expression, a severity label and a summary."""
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_alert_rules_read_only_contract_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']} reads no metric"
    assert names <= CONTRACT, f"{rule['alert']}: unknown {sorted(names - CONTRACT)}"


def test_the_alerts_cover_what_ops_asked_for() -> None:
    """Late/stuck exchanges, outbox age, activity failures, schedule-to-start, dead letters, budgets, targets."""
    read = set().union(*(metric_names(rule["expr"]) for rule in _rules()))
    assert {
        "cx_exchanges_late",
        "cx_outbox_oldest_age_seconds",
        "temporal_activity_execution_failed_total",
        "temporal_activity_schedule_to_start_latency_bucket",
        "cx_dispatcher_deliveries_total",
        "cx_budget_cents",
        "cx_reconcile_differences_total",
        "up",
    } <= read


def test_the_dashboard_reads_only_contract_metrics() -> None:
    """Grafana's dashboard JSON loads; every panel query names only known metrics, and the issue's panels exist."""
    queries = _dashboard_queries()
    read = set().union(*(metric_names(query) for query in queries))
    assert read <= CONTRACT, sorted(read - CONTRACT)
    assert {
        "cx_exchanges",
        "cx_exchanges_late",
        "cx_budget_cents",
        "cx_outbox_backlog",
        "cx_outbox_oldest_age_seconds",
        "temporal_activity_execution_failed_total",
        "temporal_activity_schedule_to_start_latency_bucket",
        "cx_dispatcher_deliveries_total",
    } <= read


def test_prometheus_scrapes_every_role_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"cx-worker", "cx-dispatcher", "cx-api", "temporal"} <= jobs


def test_grafana_is_provisioned_with_the_datasource_the_dashboard_names() -> None:
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "clusterxchange.json").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {uid}


def test_every_engine_metric_of_the_contract_is_made_by_the_code() -> None:
    """The contract is not a wish list: each cx_* family is named where the engine creates it (prometheus_client
    adds `_total` to a counter's name, so the code names a counter without it)."""
    root = DEPLOY.parent
    code = "\n".join(
        path.read_text()
        for package in ("activities", "clients", "ledger", "workers")
        for path in (root / package).rglob("*.py")
    )
    missing = {name for name in ENGINE if f'"{name}"' not in code and f'"{name.removesuffix("_total")}"' not in code}
    assert missing == set(), f"metrics in the contract that no code creates: {sorted(missing)}"
