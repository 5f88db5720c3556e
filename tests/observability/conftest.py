"""A local OTLP/HTTP receiver standing in for a collector: what the tracing tests export to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from workers.devstack import free_port
from workers.tracing import Tracing, instrument_libraries, tracing_with, uninstrument_libraries


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    content_type: str
    headers: dict[str, str]
    body: bytes


class _Collector(BaseHTTPRequestHandler):
    received: list[Received]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        self.received.append(Received("POST", self.path, content_type, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what arrived, not the server's log."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Received]]]:
    """A local OTLP/HTTP stand-in on a free port: its base URL and what it received; stopped afterwards."""
    received: list[Received] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def exported_spans(received: list[Received]) -> list[tuple[str, str, bytes]]:
    """(service name, span name, trace id) of every span POSTed to /v1/traces so far."""
    spans: list[tuple[str, str, bytes]] = []
    for request in list(received):
        if request.path != "/v1/traces":
            continue
        for resource_spans in ExportTraceServiceRequest.FromString(request.body).resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attributes.get("service.name", "")
            spans += [
                (service, span.name, span.trace_id) for scope in resource_spans.scope_spans for span in scope.spans
            ]
    return spans


@pytest.fixture
def tracing() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    """Tracing to memory, asyncpg and httpx instrumented for this test only (the patch is process-wide)."""
    exporter = InMemorySpanExporter()
    tracing = tracing_with(exporter, service_name="cx-test", batch=False)
    instrument_libraries(tracing)
    try:
        yield tracing, exporter
    finally:
        uninstrument_libraries()
        tracing.shutdown()
