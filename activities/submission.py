"""SUBMITTED: claim the application id for this run, so a second run under the same id changes nothing.

The claim is one row in `exchange_runs`, keyed by the application id (migration 0007). Inserting is
idempotent (a retried activity finds its own row); a different run finds the owner's row and is told so.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from schemas.submission import ClaimExchangeRunInput, ClaimExchangeRunResult


class SubmissionActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="claim_exchange_run")
    async def claim_exchange_run(self, request: ClaimExchangeRunInput) -> ClaimExchangeRunResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO exchange_runs (application_id, workflow_id, run_id, started_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (application_id) DO NOTHING""",
                request.application_id,
                request.workflow_id,
                request.run_id,
                request.started_at,
            )
            owner = await conn.fetchrow(
                "SELECT run_id, claimed_at FROM exchange_runs WHERE application_id = $1", request.application_id
            )
        assert owner is not None, "the row was inserted or already present in this transaction"
        return ClaimExchangeRunResult(
            claimed=owner["run_id"] == request.run_id, owner_run_id=owner["run_id"], claimed_at=owner["claimed_at"]
        )
