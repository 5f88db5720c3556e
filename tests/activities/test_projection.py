"""Batches never retry for hours on data Postgres refuses (issue 11): sanitised once and alerted on, a
stage's own work done without a batch Postgres will not take, and a lone batch refused for good with a
typed error that the workflow turns into an alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.funding import FundingActivities
from activities.projection import ProjectionActivities
from ledger.store import LedgerStore
from schemas.errors import ErrorType
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.funding import FundExchangeInput
from schemas.ids import hold_key
from schemas.policy import load_policy
from schemas.stages import Stage
from tests.factories import application


def event(sequence: int, stage: Stage, reason: str = "", **state: object) -> ProjectedEvent:
    """An event as only a hole in the edge checks could build it (model_construct skips validation)."""
    valid = ProjectedEvent(
        sequence=sequence, event=EventName.STAGE_ENTERED, stage=stage, at=datetime.now(UTC), actor_id="system"
    )
    return valid.model_copy(update={"reason": reason, **state})


async def test_a_nul_character_is_sanitised_once_and_the_read_model_moves_on(pg_pool: asyncpg.Pool) -> None:
    """A reason holding U+0000 (Postgres refuses it): the audit row is written with U+FFFD and marked
    sanitised, and the read model shows the new stage at once, instead of two hours of retries."""
    app = application()
    projection = ProjectionActivities(pg_pool)
    batch = ProjectionBatch(
        application=app, events=(event(1, Stage.SUBMITTED, "received"), event(2, Stage.WITHDRAWN, "ill\u0000ness"))
    )
    await ActivityEnvironment().run(projection.record_events, batch)
    row = await pg_pool.fetchrow(
        "SELECT reason, details FROM audit_events WHERE application_id = $1 AND sequence = 2", app.application_id
    )
    assert row is not None
    assert row["reason"] == "ill\ufffdness"
    assert "sanitised" in row["details"]
    stage = await pg_pool.fetchval("SELECT stage FROM exchanges WHERE application_id = $1", app.application_id)
    assert stage == "WITHDRAWN"


async def test_a_batch_breaking_a_constraint_fails_for_good_at_once(pg_pool: asyncpg.Pool) -> None:
    """A negative grant breaks the read model's CHECK: record_events fails non-retryable (projection_rejected),
    which the workflow records as an alert; nothing half-written remains."""
    app = application()
    broken = ProjectionBatch(application=app, events=(event(1, Stage.FUNDING, "priced", grant_cents=-1),))
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(ProjectionActivities(pg_pool).record_events, broken)
    assert failed.value.type == ErrorType.PROJECTION_REJECTED
    assert failed.value.non_retryable
    written = await pg_pool.fetchval("SELECT count(*) FROM audit_events WHERE application_id = $1", app.application_id)
    assert written == 0


async def test_a_stage_s_own_work_goes_on_without_a_batch_postgres_refuses(pg_pool: asyncpg.Pool) -> None:
    """FUNDING carrying a batch that breaks a constraint still claims, prices and holds: money never waits on
    the audit trail (the lost rows are alerted on, and the next batch brings the read model forward)."""
    store = LedgerStore(pg_pool)
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await store.allocate(idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=500_000)
    app = application(visitor_partnership_id=partnership)
    request = FundExchangeInput(
        application=app,
        policy=load_policy(),
        projection=ProjectionBatch(application=app, events=(event(1, Stage.FUNDING, "x", grant_cents=-1),)),
        hold_key=hold_key(app.application_id),
        first_sequence=2,
        now=datetime.now(UTC),
        signature_due=datetime.now(UTC),
    )
    result = await ActivityEnvironment().run(FundingActivities(pg_pool, store).fund_exchange, request)
    assert result.claimed
    assert result.held
    assert result.hold_id is not None
    stage = await pg_pool.fetchval("SELECT stage FROM exchanges WHERE application_id = $1", app.application_id)
    assert stage == "AGREEMENT"
