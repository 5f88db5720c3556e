"""The Prometheus endpoint serves the SDK's metrics and our business counters (events, euros held)."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.converter import DATA_CONVERTER
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import add_review_panel, approve, result_of, wait_for_stage
from workers.devstack import free_port
from workers.main import build_worker
from workers.metrics import runtime_with_metrics


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


async def test_metrics_endpoint_counts_events_and_euros_held_per_partnership(
    dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool
) -> None:
    """After one exchange reaches AGREEMENT, /metrics shows SDK metrics, cx_events_total and cx_held_cents_total."""
    address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_server_env.client.service_client.config.target_host,
        data_converter=DATA_CONVERTER,
        runtime=runtime_with_metrics(address),
    )
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await LedgerStore(pg_pool).allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=500_000
    )
    await add_review_panel(pg_pool, partnership)
    task_queue = f"cx-metrics-{uuid.uuid4().hex[:8]}"
    exchanges = ExchangeClient(client, task_queue)
    app = application(visitor_partnership_id=partnership)
    async with build_worker(client, pg_pool, task_queue):
        await exchanges.start_exchange(app)
        await approve(exchanges, app.application_id)
        await wait_for_stage(exchanges, app.application_id, Stage.AGREEMENT)
        await exchanges.cancel(app.application_id, {"actor_id": "officer", "reason": "metrics test done"})
        await result_of(exchanges, app.application_id)
        text = await asyncio.to_thread(_scrape, address)
    assert "temporal_workflow_task_execution_latency" in text or "temporal_request" in text
    assert f'partnership="{partnership}"' in text
    held = [line for line in text.splitlines() if line.startswith("cx_held_cents_total") and partnership in line]
    assert held
    assert held[0].endswith(" 95000")
    assert any(line.startswith("cx_events_total") and 'event="stage_entered"' in line for line in text.splitlines())
