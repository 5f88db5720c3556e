"""Worker Versioning (workers/versioning.py, docs/operations.md "Rolling out a new build"): a new build runs
beside the old one, `promote` makes it current, and an open exchange moves to it at its next workflow task
(auto-upgrade), carrying on where it was; a build no worker runs is never made current."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import Fund, assigned, wait_for_stage
from workers.main import build_worker
from workers.versioning import Deployment, PromotionError, current_build_id, promote

NAMESPACE = "default"


async def build_of(client: Client, workflow_id: str) -> str:
    """The build id the exchange's last workflow task ran on (its versioning info)."""
    described = await client.get_workflow_handle(workflow_id).describe()
    return described.raw_description.workflow_execution_info.versioning_info.deployment_version.build_id


async def test_a_new_build_is_rolled_out_beside_the_old_and_open_exchanges_follow_it(
    dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool, funded_partnership: Fund
) -> None:
    client = dev_server_env.client
    task_queue = f"cx-versioned-{uuid.uuid4().hex[:8]}"
    name = f"cx-{uuid.uuid4().hex[:8]}"
    v1, v2 = Deployment(name, "v1"), Deployment(name, "v2")
    exchanges = ExchangeClient(client, task_queue)
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership, host_partnership_id=partnership)
    workflow_id = f"exchange:{app.application_id}"

    async with build_worker(client, pg_pool, task_queue, deployment=v1):
        assert await promote(client, NAMESPACE, v1) is None  # the first build: nothing was current
        assert await current_build_id(client, NAMESPACE, name) == "v1"
        await exchanges.start_exchange(app)
        await wait_for_stage(exchanges, app.application_id, Stage.REVIEW)
        assert await build_of(client, workflow_id) == "v1"

    # v1's workers are gone; v2 starts beside where they were and is made current.
    async with build_worker(client, pg_pool, task_queue, deployment=v2):
        assert await promote(client, NAMESPACE, v2) == "v1"
        assert await promote(client, NAMESPACE, v2) == "v2"  # a repeat changes nothing
        status = await assigned(exchanges, app.application_id)
        assert status.review is not None
        reviewer = next(a.reviewer_id for a in status.review.assignments if a.status == "open")
        after = await exchanges.decide(
            app.application_id, "declare_conflict", {"actor_id": reviewer, "reason": "I advised the host last year"}
        )
        assert await build_of(client, workflow_id) == "v2"  # the update's task ran on the new build
        assert after.stage is Stage.REVIEW
        assert after.review is not None
        assert any(a.reviewer_id == reviewer and a.status != "open" for a in after.review.assignments)


async def test_a_build_that_no_worker_runs_is_never_made_current(dev_server_env: WorkflowEnvironment) -> None:
    """Promoting a build before its workers poll would stall every exchange: refused after the wait, naming it."""
    name = f"cx-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PromotionError) as refused:
        await promote(dev_server_env.client, NAMESPACE, Deployment(name, "ghost"), timeout_s=1.5, retry_s=0.5)
    assert "'ghost'" in str(refused.value)
    assert "no worker of this build polled" in str(refused.value)
    assert await current_build_id(dev_server_env.client, NAMESPACE, name) is None
