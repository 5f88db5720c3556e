"""SCREENING as activities: the rules R1-R6 and R13 run on the policy, and R7's visit (an organisation visits once).

`screen_application` runs the pure rules of rules/screening.py; the Exchange workflow asks it again when
an amended application is screened anew (admission screens inside its own unit of work).

R7: the claim is a row in `organisation_visits` under a partial unique index (one live claim per
organisation), so concurrent applications of one organisation cannot both pass, whatever the timing. It is
taken at FUNDING (activities/funding.py) and released at closing (activities/closing.py); both are
idempotent: claiming again returns the same answer, releasing twice is a no-op. SCREENING reads the same
rows early (`check_visit`, read-only), so an application whose organisation has already used its visit, or
whose visit another live exchange holds, is refused before reviewers spend time on it. The check decides
nothing by itself: two applications screened before either claims both pass it, and the claim at FUNDING
refuses the second.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from ledger.store import DbConnection
from rules.screening import screen
from schemas.screening import (
    CheckVisitInput,
    CheckVisitResult,
    ClaimVisitResult,
    ScreenApplicationInput,
    ScreeningResult,
    VisitUse,
)
from schemas.stages import Stage


@activity.defn(name="screen_application")
async def screen_application(request: ScreenApplicationInput) -> ScreeningResult:
    return screen(request.application, request.policy, request.submitted_at.date())


async def claim(conn: DbConnection, organisation_id: str, application_id: str) -> ClaimVisitResult:
    """R7's atomic claim (at FUNDING): one live claim per organisation, whatever the timing."""
    await conn.execute(
        """INSERT INTO organisation_visits (organisation_id, application_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING""",
        organisation_id,
        application_id,
    )
    holder: str | None = await conn.fetchval(
        "SELECT application_id FROM organisation_visits WHERE organisation_id = $1 AND released_at IS NULL",
        organisation_id,
    )
    return ClaimVisitResult(claimed=holder == application_id, held_by_application_id=holder)


async def check(conn: DbConnection, organisation_id: str, application_id: str) -> CheckVisitResult:
    """Whether the organisation's one visit is free, held by another live exchange, or used, with evidence.

    An unreleased claim is the only thing that counts: the workflow releases a claim when its exchange
    ends without the stay (R7), so a released one gives the visit back. The partial unique index keeps
    at most one unreleased claim per organisation; the asking exchange's own claim never counts against it.
    """
    row = await conn.fetchrow(
        """SELECT v.application_id, v.claimed_at, e.stage
             FROM organisation_visits v LEFT JOIN exchanges e ON e.application_id = v.application_id
            WHERE v.organisation_id = $1 AND v.released_at IS NULL AND v.application_id <> $2""",
        organisation_id,
        application_id,
    )
    if row is None:
        return CheckVisitResult(organisation_id=organisation_id, visit=VisitUse.FREE)
    stage = Stage(row["stage"]) if row["stage"] is not None else None
    # A holder that has ended keeps the claim only when its stay counts (paid, forfeited, or cancelled
    # under a policy saying so): the visit is used. A holder still running may yet give it back. A claim
    # whose exchange is not in the read model is treated as held: it is live in the table all the same.
    return CheckVisitResult(
        organisation_id=organisation_id,
        visit=VisitUse.USED if stage is not None and stage.is_terminal else VisitUse.HELD,
        held_by_application_id=row["application_id"],
        claimed_at=row["claimed_at"],
        holder_stage=stage,
    )


async def release(conn: DbConnection, application_id: str, reason: str) -> None:
    """Give the visit back (the exchange ended without the stay); releasing twice changes nothing."""
    await conn.execute(
        """UPDATE organisation_visits SET released_at = now(), release_reason = $2
           WHERE application_id = $1 AND released_at IS NULL""",
        application_id,
        reason,
    )


class VisitActivities:
    """The R7 read asked again when an amended application is screened anew (the claim and its release
    are part of FUNDING's and closing's own activities)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="check_visit")
    async def check_visit(self, request: CheckVisitInput) -> CheckVisitResult:
        async with self._pool.acquire() as conn:
            return await check(conn, request.organisation_id, request.application_id)
