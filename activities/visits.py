"""FUNDING (R7): an organisation visits only once in the whole scheme.

The claim is a row in `organisation_visits` under a partial unique index (one live claim per
organisation), so concurrent applications of one organisation cannot both pass, whatever the timing.
Both activities are idempotent: claiming again returns the same answer, releasing twice is a no-op.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from schemas.activities import ClaimVisitInput, ClaimVisitResult, ReleaseVisitInput


class VisitActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="claim_visit")
    async def claim_visit(self, request: ClaimVisitInput) -> ClaimVisitResult:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO organisation_visits (organisation_id, application_id) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING""",
                request.organisation_id,
                request.application_id,
            )
            holder: str | None = await conn.fetchval(
                "SELECT application_id FROM organisation_visits WHERE organisation_id = $1 AND released_at IS NULL",
                request.organisation_id,
            )
        if holder == request.application_id:
            return ClaimVisitResult(claimed=True, held_by_application_id=holder)
        return ClaimVisitResult(claimed=False, held_by_application_id=holder)

    @activity.defn(name="release_visit")
    async def release_visit(self, request: ReleaseVisitInput) -> None:
        await self._pool.execute(
            """UPDATE organisation_visits SET released_at = now(), release_reason = $2
               WHERE application_id = $1 AND released_at IS NULL""",
            request.application_id,
            request.reason,
        )
