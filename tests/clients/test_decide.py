"""`cx decide` and `cx signal` as subprocesses against a running exchange: decisions recorded or refused in one line."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application
from tests.workflows.conftest import add_review_panel, assigned, review, wait_for_stage
from tests.workflows.conftest import dev_client as dev_client  # the fixture: a worker on the dev server


async def test_reviewers_decide_from_the_command_line(dev_client: ExchangeClient, pg_pool: asyncpg.Pool) -> None:
    """An assigned reviewer's decision is recorded; an unassigned one is refused with the reason, exit 1.

    The CLI runs in a thread: the worker answering its updates shares this test's event loop."""
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await LedgerStore(pg_pool).allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=500_000
    )
    await add_review_panel(pg_pool, partnership)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    status = await assigned(dev_client, app.application_id)
    assert status.review is not None
    reviewers = [a.reviewer_id for a in status.review.assignments]
    env = {
        "TEMPORAL_ADDRESS": dev_client.temporal.service_client.config.target_host,
        "CX_TASK_QUEUE": dev_client.task_queue,
    }
    refused = await asyncio.to_thread(
        cx, "decide", app.application_id, "submit_review", "--data", json.dumps(review("intruder")), env=env
    )
    assert refused.returncode == 1
    assert "not assigned" in refused.stderr
    assert "Traceback" not in refused.stderr
    for reviewer_id in reviewers:
        done = await asyncio.to_thread(
            cx, "decide", app.application_id, "submit_review", "--data", json.dumps(review(reviewer_id)), env=env
        )
        assert done.returncode == 0, done.stderr
    await wait_for_stage(dev_client, app.application_id, Stage.AGREEMENT)
    bad = await asyncio.to_thread(
        cx, "signal", app.application_id, "confirm_payment", "--data", '{"payment_reference": ""}', env=env
    )
    assert bad.returncode == 2
    assert "payment_reference" in bad.stderr
    await dev_client.cancel(app.application_id, {"actor_id": "officer", "reason": "test finished"})
