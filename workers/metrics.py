"""The Prometheus endpoint: Temporal SDK metrics (latencies, task slots, polls) and the business counters
of activities/metrics.py, served at http://<CX_METRICS_ADDRESS>/metrics."""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


def runtime_with_metrics(bind_address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics at http://<bind_address>/metrics."""
    metrics = PrometheusConfig(bind_address=bind_address, counters_total_suffix=True)
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))
