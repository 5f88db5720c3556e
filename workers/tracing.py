"""OpenTelemetry traces across client -> workflow -> activity -> Postgres -> HTTP (issue 15, item 6; ADR 0018).

`configure_tracing(settings, role)` is called once by `cx worker`, `cx api` and `cx dispatcher`. While
OTEL_EXPORTER_OTLP_ENDPOINT is unset it returns None and installs nothing: no provider, no interceptor, no
patched library, not even an import of the SDK, so tracing costs nothing when off. When set, it builds one
TracerProvider named for the role (`cx-worker`, `cx-api`, `cx-dispatcher`; OTEL_SERVICE_NAME overrides),
sampled as OTEL_TRACES_SAMPLER says, exporting in batches over OTLP http/protobuf, and instruments asyncpg
and httpx for the process. The variables are read through Settings (workers/settings.py), never by us from
the environment; the values are passed to the exporter explicitly.

What the caller then installs:
- the Temporal `TracingInterceptor` on its client (`traced_client`): client calls (start, update, signal)
  get spans and carry the context in headers; a Worker built on that client takes the same interceptor for
  its workflows and activities (the SDK prepends a client's worker interceptors), so a worker's client and
  its worker are traced by one interceptor and no span is made twice;
- FastAPI's instrumentation on the API app (`Tracing.instrument_api`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from temporalio.client import Client

from workers.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from temporalio.contrib.opentelemetry import TracingInterceptor

Role = Literal["worker", "api", "dispatcher"]
# OTLP over HTTP posts spans to this path under OTEL_EXPORTER_OTLP_ENDPOINT (the specification's rule).
TRACES_PATH = "/v1/traces"
# Bounds of the batch exporter: a collector that does not answer costs at most this per export.
EXPORT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Tracing:
    """The process's tracing once configured: its provider, and what to install on clients and the API."""

    provider: TracerProvider

    def interceptor(self) -> TracingInterceptor:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        return TracingInterceptor(self.provider.get_tracer("clusterxchange.temporal"))

    def instrument_api(self, app: FastAPI) -> None:
        """Server spans for every request to the API (and its web app), named by route template; the spans
        still batched are flushed when the app shuts down."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider, exclude_spans=["receive", "send"])
        serving = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan_then_flush(served: Any) -> AsyncIterator[Any]:
            # In the lifespan, not after uvicorn's serve(): on SIGTERM uvicorn re-raises the signal once it
            # has shut down, and the process ends before any code after serve() runs.
            try:
                async with serving(served) as state:
                    yield state
            finally:
                self.shutdown()

        app.router.lifespan_context = lifespan_then_flush

    def shutdown(self) -> None:
        """Flush the spans still batched and stop exporting (at process exit)."""
        self.provider.shutdown()


def configure_tracing(settings: Settings, role: Role) -> Tracing | None:
    """Tracing for the process as Settings say, or None (and nothing installed) when no endpoint is set:
    `build_tracing`, then its provider made the process's global one and asyncpg and httpx instrumented."""
    tracing = build_tracing(settings, role)
    if tracing is None:
        return None
    from opentelemetry import trace

    # The global provider too: libraries that trace through the API (not given ours) land here.
    trace.set_tracer_provider(tracing.provider)
    instrument_libraries(tracing)
    return tracing


def build_tracing(settings: Settings, role: Role) -> Tracing | None:
    """The provider and its OTLP exporter as Settings say, nothing installed yet; None when no endpoint is set."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    secret_headers = settings.otel_exporter_otlp_headers
    headers = parse_headers(secret_headers.get_secret_value() if secret_headers else None)
    exporter = OTLPSpanExporter(endpoint=traces_endpoint(endpoint), headers=headers or None, timeout=EXPORT_TIMEOUT_S)
    return tracing_with(
        exporter,
        service_name=settings.otel_service_name or f"cx-{role}",
        sampler=sampler_of(settings.otel_traces_sampler, settings.otel_traces_sampler_arg),
    )


def shutdown_tracing(tracing: Tracing | None) -> None:
    """Flush and stop the process's tracing, if it has any (at the end of a process command)."""
    if tracing is not None:
        tracing.shutdown()


def tracing_with(
    exporter: SpanExporter, *, service_name: str, sampler: Sampler | None = None, batch: bool = True
) -> Tracing:
    """A provider exporting to `exporter` (tests pass an in-memory one, unbatched, to read spans at once)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    return Tracing(provider)


def instrument_libraries(tracing: Tracing) -> None:
    """Client spans for every asyncpg query and httpx request of the process (a global patch of both)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=tracing.provider)  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument(tracer_provider=tracing.provider)


def uninstrument_libraries() -> None:
    """Undo `instrument_libraries` (tests, which share one interpreter with untraced tests)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()


def traced_client(client: Client, tracing: Tracing | None) -> Client:
    """`client` itself when tracing is off, else the same connection with the tracing interceptor added.

    A new Client over the same service client (the SDK's documented way to change a client's options), so
    that workers/connect.py stays the one place that connects, whatever it connects with.
    """
    if tracing is None:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], tracing.interceptor()]
    return Client(**config)


def traces_endpoint(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; traces go to `<base>/v1/traces`."""
    return endpoint.rstrip("/") + TRACES_PATH


def parse_headers(raw: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS, `key=value,key2=value2` (values URL-encoded), as a dict; refuses a pair
    without `=` naming it by position, never by value (a header is often a credential)."""
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for position, pair in enumerate(filter(None, (part.strip() for part in (raw or "").split(","))), start=1):
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"OTEL_EXPORTER_OTLP_HEADERS: pair {position} is not key=value")
        headers[unquote(key.strip())] = unquote(value.strip())
    return headers


def sampler_of(name: str, ratio: float) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names (its values as the specification lists them)."""
    from opentelemetry.sdk.trace import sampling

    samplers: dict[str, Sampler] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    return samplers[name]
