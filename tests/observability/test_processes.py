"""The processes as deployed: `cx api` and `cx worker` with OTEL_EXPORTER_OTLP_ENDPOINT set export one trace.

Both run as subprocesses against the session's dev server and database, exporting to a local OTLP/HTTP
receiver (tests/observability/conftest.py). One POST /exchanges must give spans of `cx-api` and of
`cx-worker` in the same trace, the worker's down to an activity's SQL; the API process's /metrics has its
gauges refreshed by its own background task and the request counted.
"""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from tests.api.helpers import body, officer_of
from tests.observability.conftest import Received, exported_spans
from tests.waiting import eventually
from tests.workers.test_connect import cx_process
from tests.workflows.conftest import add_review_panel
from workers.devstack import free_port

TOKEN = "tok-process-officer-Vb7Qx2Lm9Kp4Rz8Wn3Jd"
WITHIN_S = 60


async def test_api_and_worker_processes_export_one_trace_and_the_api_serves_its_gauges(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    pg_pool: asyncpg.Pool,
    collector: tuple[str, list[Received]],
) -> None:
    """A request to `cx api` traced through `cx worker` to SQL, exported over OTLP by both processes."""
    endpoint, received = collector
    partnership = f"p-proc-{uuid.uuid4().hex[:8]}"
    await add_review_panel(pg_pool, partnership)
    common = {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "CX_TASK_QUEUE": f"cx-proc-{uuid.uuid4().hex[:8]}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "CX_GAUGE_INTERVAL_S": "1",
    }
    tokens = {TOKEN: {"subject": officer_of(partnership), "role": "officer", "partnerships": [partnership]}}
    port = free_port()
    async with (
        cx_process("worker", env=common | {"CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/orders"}) as worker,
        cx_process("api", "--port", str(port), env=common | {"CX_API_TOKENS": json.dumps(tokens)}) as api,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        await worker.wait_for_line("worker started")
        # uvicorn binds its socket after the app's startup: this line comes once it listens.
        await api.wait_for_line("Uvicorn running on")
        application = body(partnership)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        started = await http.post("/exchanges", json=application, headers=headers)
        assert started.status_code == 201, started.text

        def one_trace(spans: list[tuple[str, str, bytes]]) -> bool:
            api_traces = {t for service, name, t in spans if service == "cx-api" and name == "POST /exchanges"}
            worker_names = {name for service, name, t in spans if service == "cx-worker" and t in api_traces}
            return any(n.startswith("RunActivity:") for n in worker_names) and len(worker_names) > 2

        async def spans() -> list[tuple[str, str, bytes]]:
            return exported_spans(received)

        # The batch exporter sends every 5 s: a few batches fit in the wait.
        await eventually(spans, one_trace, "cx-api's request and cx-worker's activity spans in one trace", WITHIN_S)

        async def metrics() -> str:
            return (await http.get("/metrics")).text

        text = await eventually(
            metrics,
            lambda t: "cx_gauges_refreshed_timestamp_seconds " in t and f'partnership="{partnership}"' not in t,
            "the API process's own refresh of the gauges",
            WITHIN_S,
        )
        assert 'cx_http_requests_total{method="POST",route="/exchanges",status="201"} 1.0' in text
        await http.post(
            f"/exchanges/{application['application_id']}/updates/cancel",
            json={"actor_id": officer_of(partnership), "reason": "process test finished"},
            headers=headers,
        )
        # uvicorn re-raises SIGTERM once it has shut down (exit -15); the app's lifespan has ended by then.
        assert await api.stop() in {0, -15}, api.lines
        assert await worker.stop() == 0, worker.lines
    # Spans still batched at SIGTERM were flushed on the way out (the batch exporter would wait 5 s).
    flushed = {(service, name) for service, name, _ in exported_spans(received)}
    assert ("cx-api", "POST /exchanges/{application_id}/updates/cancel") in flushed
    assert ("cx-worker", "HandleUpdate:cancel") in flushed
