"""A projection that Postgres refuses for good is an alert, and the exchange goes on (issue 11).

The read model is refused here by a stand-in (a test of the workflow's own logic): real refusals cannot be
produced any more, since everything that enters is checked at the edge (tests/activities/test_projection.py
shows the real activity sanitising and failing for good).
"""

from __future__ import annotations

import uuid

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.projection import ProjectionActivities
from clients.client import ExchangeClient
from schemas.errors import ErrorType
from schemas.events import EventName, ProjectionBatch
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import Fund, assigned, review, until, wait_for_stage
from workers.main import build_worker


class RefusingProjection(ProjectionActivities):
    """A stand-in whose Postgres refuses, for good, the batch holding the first review."""

    @activity.defn(name="record_events")
    async def record_events(self, batch: ProjectionBatch) -> None:
        if any(event.event is EventName.REVIEW_SUBMITTED for event in batch.events):
            raise ApplicationError("simulated refusal", type=ErrorType.PROJECTION_REJECTED, non_retryable=True)
        await super().record_events(batch)


async def test_a_refused_projection_becomes_an_alert_and_the_exchange_goes_on(
    time_skipping_env: WorkflowEnvironment, pg_pool: asyncpg.Pool, funded_partnership: Fund
) -> None:
    """The workflow is not stopped by its read model: a batch refused for good is an alert in status, and the
    exchange carries on with its review and funding."""
    partnership = await funded_partnership(500_000)
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(time_skipping_env.client, pg_pool, task_queue, projection=RefusingProjection(pg_pool))
    async with worker:
        client = ExchangeClient(time_skipping_env.client, task_queue)
        app = application(visitor_partnership_id=partnership)
        await client.start_exchange(app)
        status = await assigned(client, app.application_id)
        assert status.review is not None
        first, second = (a.reviewer_id for a in status.review.assignments)
        await client.submit_review(app.application_id, review(first))
        status = await until(
            client,
            app.application_id,
            lambda s: any("projection_rejected" in a for a in s.alerts),
            "the projection_rejected alert",
        )
        assert status.stage is Stage.REVIEW
        await client.submit_review(app.application_id, review(second))
        await wait_for_stage(client, app.application_id, Stage.AGREEMENT)
