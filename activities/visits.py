"""FUNDING (R7): an organisation visits only once in the whole scheme.

The claim is a row in `organisation_visits` under a partial unique index (one live claim per
organisation), so concurrent applications of one organisation cannot both pass, whatever the timing.
Both activities are idempotent: claiming again returns the same answer, releasing twice is a no-op.

SCREENING reads the same rows early (`check_visit`, read-only), so an application whose organisation has
already used its visit, or whose visit another live exchange holds, is refused before reviewers spend
time on it. The check decides nothing by itself: two applications screened before either claims both
pass it, and the claim at FUNDING refuses the second.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from schemas.activities import (
    CheckVisitInput,
    CheckVisitResult,
    ClaimVisitInput,
    ClaimVisitResult,
    ReleaseVisitInput,
    VisitUse,
)
from schemas.stages import Stage


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

    @activity.defn(name="check_visit")
    async def check_visit(self, request: CheckVisitInput) -> CheckVisitResult:
        """Whether the organisation's one visit is free, held by another live exchange, or used, with evidence.

        An unreleased claim is the only thing that counts: the workflow releases a claim when its exchange
        ends without the stay (R7), so a released one gives the visit back. The partial unique index keeps
        at most one unreleased claim per organisation; the asking exchange's own claim (a re-screening after
        it claimed, which the lifecycle does not do today) never counts against it.
        """
        row = await self._pool.fetchrow(
            """SELECT v.application_id, v.claimed_at, e.stage
                 FROM organisation_visits v LEFT JOIN exchanges e ON e.application_id = v.application_id
                WHERE v.organisation_id = $1 AND v.released_at IS NULL AND v.application_id <> $2""",
            request.organisation_id,
            request.application_id,
        )
        if row is None:
            return CheckVisitResult(organisation_id=request.organisation_id, visit=VisitUse.FREE)
        stage = Stage(row["stage"]) if row["stage"] is not None else None
        # A holder that has ended keeps the claim only when its stay counts (paid, forfeited, or cancelled
        # under a policy saying so): the visit is used. A holder still running may yet give it back. A claim
        # whose exchange is not in the read model is treated as held: it is live in the table all the same.
        return CheckVisitResult(
            organisation_id=request.organisation_id,
            visit=VisitUse.USED if stage is not None and stage.is_terminal else VisitUse.HELD,
            held_by_application_id=row["application_id"],
            claimed_at=row["claimed_at"],
            holder_stage=stage,
        )

    @activity.defn(name="release_visit")
    async def release_visit(self, request: ReleaseVisitInput) -> None:
        await self._pool.execute(
            """UPDATE organisation_visits SET released_at = now(), release_reason = $2
               WHERE application_id = $1 AND released_at IS NULL""",
            request.application_id,
            request.reason,
        )
