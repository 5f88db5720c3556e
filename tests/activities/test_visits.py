"""R7 in Postgres: one live visit claim per organisation, whatever the concurrency; released claims free it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.visits import VisitActivities
from schemas.activities import ClaimVisitInput, ReleaseVisitInput


async def test_twenty_concurrent_claims_of_one_organisation_grant_exactly_one(pg_pool: asyncpg.Pool) -> None:
    """Twenty applications of one organisation claiming at the same moment: exactly one wins, all agree who."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    visits = VisitActivities(pg_pool)
    env = ActivityEnvironment()
    requests = [
        ClaimVisitInput(organisation_id=organisation, application_id=f"app-{i}-{organisation}") for i in range(20)
    ]
    results = await asyncio.gather(*(env.run(visits.claim_visit, r) for r in requests))
    winners = [r for r in results if r.claimed]
    assert len(winners) == 1
    assert {r.held_by_application_id for r in results} == {winners[0].held_by_application_id}


async def test_claiming_twice_is_idempotent_and_a_release_frees_the_visit(pg_pool: asyncpg.Pool) -> None:
    """The holder claiming again still holds; after its release another application can claim."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    visits, env = VisitActivities(pg_pool), ActivityEnvironment()
    first = ClaimVisitInput(organisation_id=organisation, application_id=f"a-{organisation}")
    second = ClaimVisitInput(organisation_id=organisation, application_id=f"b-{organisation}")
    assert (await env.run(visits.claim_visit, first)).claimed
    assert (await env.run(visits.claim_visit, first)).claimed
    assert not (await env.run(visits.claim_visit, second)).claimed
    await env.run(visits.release_visit, ReleaseVisitInput(application_id=first.application_id, reason="WITHDRAWN"))
    await env.run(visits.release_visit, ReleaseVisitInput(application_id=first.application_id, reason="WITHDRAWN"))
    assert (await env.run(visits.claim_visit, second)).claimed
