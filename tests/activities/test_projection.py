"""The projection never retries for hours on data Postgres refuses (issue 11): it sanitises once and alerts,
or fails for good with a typed error that the workflow turns into an alert."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.projection import ProjectionActivities
from schemas.activities import ProjectTransitionInput
from schemas.errors import ErrorType
from schemas.stages import Stage
from tests.factories import application


def event(sequence: int, stage: Stage, reason: str, **fields: object) -> ProjectTransitionInput:
    """An event as only a hole in the edge checks could build it (model_construct skips validation)."""
    app = fields.pop("app", None) or application()
    valid = ProjectTransitionInput(
        application=app,
        stage=stage,
        at=datetime.now(UTC),
        actor_id="system",
        event="stage_entered",
        sequence=sequence,
    )
    return valid.model_copy(update={"reason": reason, **fields})


async def test_a_nul_character_is_sanitised_once_and_the_read_model_moves_on(pg_pool: asyncpg.Pool) -> None:
    """A reason holding U+0000 (Postgres refuses it): the audit row is written with U+FFFD and marked
    sanitised, and the read model shows the new stage at once, instead of two hours of retries."""
    app = application()
    projection = ProjectionActivities(pg_pool)
    environment = ActivityEnvironment()
    await environment.run(projection.record_transition, event(1, Stage.SUBMITTED, "received", app=app))
    await environment.run(projection.record_transition, event(2, Stage.WITHDRAWN, "ill\u0000ness", app=app))
    row = await pg_pool.fetchrow(
        "SELECT reason, details FROM audit_events WHERE application_id = $1 AND sequence = 2", app.application_id
    )
    assert row is not None and row["reason"] == "ill\ufffdness"
    assert "sanitised" in row["details"]
    stage = await pg_pool.fetchval("SELECT stage FROM exchanges WHERE application_id = $1", app.application_id)
    assert stage == "WITHDRAWN"


async def test_an_event_breaking_a_constraint_fails_for_good_at_once(pg_pool: asyncpg.Pool) -> None:
    """A negative grant breaks the read model's CHECK: the activity fails non-retryable (projection_rejected),
    which the workflow records as an alert; nothing half-written remains."""
    app = application()
    broken = event(1, Stage.FUNDING, "priced", app=app, grant_cents=-1)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(ProjectionActivities(pg_pool).record_transition, broken)
    assert failed.value.type == ErrorType.PROJECTION_REJECTED and failed.value.non_retryable
    written = await pg_pool.fetchval("SELECT count(*) FROM audit_events WHERE application_id = $1", app.application_id)
    assert written == 0
