"""One exchange traced end to end: API request -> StartWorkflow -> RunWorkflow -> RunActivity -> Postgres, one trace.

The real pieces on the real stack: the dev server, a worker built by workers/main.py on a client traced by
workers/tracing.py, the API app with FastAPI's instrumentation, asyncpg instrumented; spans go to
OpenTelemetry's in-memory exporter instead of a collector (the OTLP delivery has its own test).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.testing import WorkflowEnvironment

from clients.api import create_app
from clients.client import ExchangeClient
from tests.api.helpers import OFFICER, auth, body, officer_of, token_table
from tests.waiting import eventually
from tests.workflows.conftest import add_review_panel
from workers.main import build_worker
from workers.tracing import Tracing, traced_client

TRACE_WITHIN_S = 30


@pytest_asyncio.fixture(loop_scope="session")
async def traced_api(
    tracing: tuple[Tracing, InMemorySpanExporter], dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API over a traced client, with a worker on that client; yields the HTTP client and a partnership."""
    traced, _ = tracing
    client = traced_client(dev_server_env.client, traced)
    task_queue = f"cx-traced-{uuid.uuid4().hex[:8]}"
    partnership = f"p-trace-{uuid.uuid4().hex[:8]}"
    await add_review_panel(pg_pool, partnership)
    app = create_app(ExchangeClient(client, task_queue), pg_pool, token_table(partnership))
    traced.instrument_api(app)
    async with (
        build_worker(client, pg_pool, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        yield http, partnership


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans if span.context is not None}


def _ancestors(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    """The names of a span's ancestors, nearest first (as far as they were recorded)."""
    names: list[str] = []
    parent = span.parent
    while parent is not None and parent.span_id in index:
        found = index[parent.span_id]
        names.append(found.name)
        parent = found.parent
    return names


def _postgres_under_activity(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    index = _by_id(spans)
    return [
        span
        for span in spans
        if span.context is not None
        and span.context.trace_id == trace_id
        and (span.attributes or {}).get("db.system") == "postgresql"
        and any(name.startswith("RunActivity:") for name in _ancestors(span, index))
    ]


async def test_one_trace_from_the_api_request_to_a_postgres_query_of_an_activity(
    tracing: tuple[Tracing, InMemorySpanExporter], traced_api: tuple[httpx.AsyncClient, str]
) -> None:
    """POST /exchanges gives one trace: request span -> StartWorkflow -> RunWorkflow -> RunActivity -> Postgres."""
    _, exporter = tracing
    http, partnership = traced_api
    application = body(partnership)
    started = await http.post("/exchanges", json=application, headers=auth(OFFICER))
    assert started.status_code in {200, 201, 202}, started.text
    request_spans = [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.SERVER and (s.attributes or {}).get("http.route") == "/exchanges"
    ]
    assert len(request_spans) == 1, [s.name for s in exporter.get_finished_spans()]
    assert request_spans[0].context is not None
    trace_id = request_spans[0].context.trace_id

    async def spans_of_trace() -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]

    spans = await eventually(
        spans_of_trace,
        lambda found: bool(_postgres_under_activity(list(found), trace_id)),
        "a Postgres span under a RunActivity span in the request's trace",
        TRACE_WITHIN_S,
    )
    index = _by_id(spans)
    query = _postgres_under_activity(spans, trace_id)[0]
    chain = _ancestors(query, index)
    activity = next(name for name in chain if name.startswith("RunActivity:"))
    scheduled = activity.replace("RunActivity:", "StartActivity:")
    # Nearest first: the activity, the workflow's scheduling of it, the client's start, the API request.
    expected = [activity, scheduled, "StartWorkflow:Exchange", request_spans[0].name]
    assert [name for name in chain if name in expected] == expected, chain
    # The workflow's run hangs under the same start (the SDK records it as a completed span beside its activities).
    start = next(s for s in spans if s.name == "StartWorkflow:Exchange")
    runs = [s for s in spans if s.name == "RunWorkflow:Exchange"]
    assert runs, sorted({s.name for s in spans})
    assert start.context is not None
    assert all(run.parent is not None and run.parent.span_id == start.context.span_id for run in runs)

    # An update through the API is traced the same way, down to the workflow's handler.
    cancelled = await http.post(
        f"/exchanges/{application['application_id']}/updates/cancel",
        json={"actor_id": officer_of(partnership), "reason": "tracing test finished"},
        headers=auth(OFFICER),
    )
    assert cancelled.status_code == 200, cancelled.text
    update_request = next(
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.SERVER
        and (s.attributes or {}).get("http.route") == "/exchanges/{application_id}/updates/cancel"
    )
    assert update_request.context is not None
    update_trace = update_request.context.trace_id

    async def update_handlers() -> list[ReadableSpan]:
        return [s for s in exporter.get_finished_spans() if s.name == "HandleUpdate:cancel"]

    # The SDK records the workflow's handler in the workflow's own trace (the start's), linked to the
    # update's request: both traces lead to each other.
    (handler,) = await eventually(update_handlers, bool, "the workflow's HandleUpdate:cancel span", TRACE_WITHIN_S)
    assert handler.context is not None
    assert handler.context.trace_id == trace_id
    assert [link.context.trace_id for link in handler.links] == [update_trace]
    client_update = [s for s in exporter.get_finished_spans() if s.name == "StartWorkflowUpdate:cancel"]
    assert [s.context.trace_id for s in client_update if s.context is not None] == [update_trace]
