"""Tracing as Settings configure it: off (nothing loaded) by default, and when on, spans really POSTed over OTLP/HTTP.

The receiver is a tiny HTTP server of the standard library on a free port, standing in for a collector:
it records each request's method, path, content type and body, and the body is decoded with the OTLP
protobuf definitions, so the test sees the spans and the service name a collector would.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.observability.conftest import Received
from workers.settings import Settings, SettingsError
from workers.tracing import build_tracing, parse_headers, traces_endpoint


def test_spans_are_posted_to_v1_traces_of_the_configured_endpoint(collector: tuple[str, list[Received]]) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, a finished span reaches the receiver as protobuf at /v1/traces."""
    endpoint, received = collector
    settings = Settings.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint + "/", "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=cx%20test"}
    )
    tracing = build_tracing(settings, "dispatcher")
    assert tracing is not None
    with tracing.provider.get_tracer("test").start_as_current_span("deliver webhook"):
        pass
    assert tracing.provider.force_flush(timeout_millis=10_000), "the batch was not exported within 10 s"
    tracing.shutdown()
    assert [(r.method, r.path, r.content_type) for r in received] == [("POST", "/v1/traces", "application/x-protobuf")]
    assert received[0].headers.get("x-tenant") == "cx test"
    request = ExportTraceServiceRequest.FromString(received[0].body)
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "cx-dispatcher"
    assert [span.name for scope in resource_spans.scope_spans for span in scope.spans] == ["deliver webhook"]


def test_service_name_and_sampler_follow_their_variables(collector: tuple[str, list[Received]]) -> None:
    """OTEL_SERVICE_NAME replaces the role's name; OTEL_TRACES_SAMPLER=always_off exports nothing."""
    endpoint, received = collector
    named = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "cx-worker-eu"})
    tracing = build_tracing(named, "worker")
    assert tracing is not None
    assert tracing.provider.resource.attributes["service.name"] == "cx-worker-eu"
    tracing.shutdown()
    silent = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_off"})
    tracing = build_tracing(silent, "worker")
    assert tracing is not None
    with tracing.provider.get_tracer("test").start_as_current_span("not sampled"):
        pass
    assert tracing.provider.force_flush(timeout_millis=10_000)
    tracing.shutdown()
    assert received == []


def test_tracing_is_off_and_not_even_imported_without_an_endpoint() -> None:
    """No OTEL_EXPORTER_OTLP_ENDPOINT: configure_tracing answers None and no OpenTelemetry SDK module is loaded."""
    script = (
        "import sys\n"
        "from workers.settings import Settings\n"
        "from workers.tracing import configure_tracing\n"
        "import workers.main\n"
        "assert configure_tracing(Settings.from_env({}), 'worker') is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.instrumentation',"
        " 'opentelemetry.exporter')))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': must be 'http/protobuf'"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER='sometimes': must be one of"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG='1.5'"),
        ({"CX_GAUGE_INTERVAL_S": "0.1"}, "CX_GAUGE_INTERVAL_S='0.1': must be at least 1 second"),
    ],
)
def test_a_malformed_observability_variable_is_refused_naming_it(variables: dict[str, str], named: str) -> None:
    """Each new variable is checked where every setting is: one line naming it and the rule."""
    with pytest.raises(SettingsError, match="^" + named.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(variables)


def test_headers_and_endpoint_follow_the_specification() -> None:
    """`k=v,k2=v2` with URL-encoded values; a pair without '=' is refused by position, never echoing a value."""
    assert parse_headers("api-key=s%3Dcret, x-team = ops ") == {"api-key": "s=cret", "x-team": "ops"}
    assert parse_headers(None) == {}
    with pytest.raises(ValueError, match="pair 2 is not key=value") as refused:
        parse_headers("a=1,secret-token-value")
    assert "secret-token-value" not in str(refused.value)
    assert traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
