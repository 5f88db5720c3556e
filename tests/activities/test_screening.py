"""R7 in Postgres: one live visit claim per organisation, whatever the concurrency; released claims free it;
the early check at SCREENING reads the claims with their evidence and writes nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.screening import VisitActivities, claim, release
from schemas.screening import CheckVisitInput, CheckVisitResult, ClaimVisitResult, VisitUse
from schemas.stages import Stage
from tests.factories import application, project


async def claim_visit(pool: asyncpg.Pool, organisation_id: str, application_id: str) -> ClaimVisitResult:
    """FUNDING's claim, as fund_exchange makes it in its transaction."""
    async with pool.acquire() as conn, conn.transaction():
        return await claim(conn, organisation_id, application_id)


async def release_visit(pool: asyncpg.Pool, application_id: str) -> None:
    """Closing's release, as close_exchange makes it in its transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await release(conn, application_id, "WITHDRAWN")


async def test_twenty_concurrent_claims_of_one_organisation_grant_exactly_one(pg_pool: asyncpg.Pool) -> None:
    """Twenty applications of one organisation claiming at the same moment: exactly one wins, all agree who."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    results = await asyncio.gather(*(claim_visit(pg_pool, organisation, f"app-{i}-{organisation}") for i in range(20)))
    winners = [r for r in results if r.claimed]
    assert len(winners) == 1
    assert {r.held_by_application_id for r in results} == {winners[0].held_by_application_id}


async def test_claiming_twice_is_idempotent_and_a_release_frees_the_visit(pg_pool: asyncpg.Pool) -> None:
    """The holder claiming again still holds; after its release another application can claim."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    first, second = f"a-{organisation}", f"b-{organisation}"
    assert (await claim_visit(pg_pool, organisation, first)).claimed
    assert (await claim_visit(pg_pool, organisation, first)).claimed
    assert not (await claim_visit(pg_pool, organisation, second)).claimed
    await release_visit(pg_pool, first)
    await release_visit(pg_pool, first)
    assert (await claim_visit(pg_pool, organisation, second)).claimed


async def _exchange_at(pool: asyncpg.Pool, organisation: str, stage: Stage | None) -> str:
    """An application of `organisation` that has claimed its visit, projected to the read model at `stage`
    (None: never projected, as for a claim whose read-model row is missing)."""
    app = application()
    app = app.model_copy(update={"visitor": app.visitor.model_copy(update={"organisation_id": organisation})})
    claimed = await claim_visit(pool, organisation, app.application_id)
    assert claimed.claimed, claimed
    if stage is not None:
        await project(pool, app, stage)
    return app.application_id


async def _check(pool: asyncpg.Pool, organisation: str, application_id: str) -> CheckVisitResult:
    request = CheckVisitInput(organisation_id=organisation, application_id=application_id)
    return await ActivityEnvironment().run(VisitActivities(pool).check_visit, request)


async def test_check_visit_finds_a_free_visit(pg_pool: asyncpg.Pool) -> None:
    """An organisation that never claimed its visit is free, with no evidence to show."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    result = await _check(pg_pool, organisation, "app-new")
    assert result == CheckVisitResult(organisation_id=organisation, visit=VisitUse.FREE)


async def test_check_visit_reports_a_live_claim_of_another_exchange_with_its_evidence(pg_pool: asyncpg.Pool) -> None:
    """Another exchange in AGREEMENT holds the visit: HELD, naming it, when it claimed and its stage."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    holder = await _exchange_at(pg_pool, organisation, Stage.AGREEMENT)
    claimed_at = await pg_pool.fetchval("SELECT claimed_at FROM organisation_visits WHERE application_id = $1", holder)
    result = await _check(pg_pool, organisation, "app-second")
    assert result == CheckVisitResult(
        organisation_id=organisation,
        visit=VisitUse.HELD,
        held_by_application_id=holder,
        claimed_at=claimed_at,
        holder_stage=Stage.AGREEMENT,
    )


@pytest.mark.parametrize("stage", [Stage.PAID, Stage.FORFEITED, Stage.CANCELLED])
async def test_check_visit_reports_a_visit_used_by_an_exchange_that_ended(pg_pool: asyncpg.Pool, stage: Stage) -> None:
    """A claim kept by an ended exchange (paid, forfeited, cancelled under a policy that counts it) is USED."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    holder = await _exchange_at(pg_pool, organisation, stage)
    result = await _check(pg_pool, organisation, "app-second")
    assert (result.visit, result.held_by_application_id, result.holder_stage) == (VisitUse.USED, holder, stage)
    assert result.claimed_at is not None


async def test_check_visit_ignores_released_claims(pg_pool: asyncpg.Pool) -> None:
    """A withdrawn exchange gave its visit back: its released claim does not count, however many there were."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        holder = await _exchange_at(pg_pool, organisation, Stage.WITHDRAWN)
        await release_visit(pg_pool, holder)
    result = await _check(pg_pool, organisation, "app-next")
    assert result.visit is VisitUse.FREE
    assert result.held_by_application_id is None


async def test_check_visit_does_not_count_the_exchange_s_own_claim(pg_pool: asyncpg.Pool) -> None:
    """The asking exchange's own claim is not another exchange's: the visit is free to it."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    holder = await _exchange_at(pg_pool, organisation, Stage.FUNDING)
    assert (await _check(pg_pool, organisation, holder)).visit is VisitUse.FREE
    assert (await _check(pg_pool, organisation, "app-other")).visit is VisitUse.HELD


async def test_check_visit_treats_a_claim_without_a_read_model_row_as_held(pg_pool: asyncpg.Pool) -> None:
    """A live claim whose exchange is not projected still holds the visit; its stage is shown as unknown."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    holder = await _exchange_at(pg_pool, organisation, None)
    result = await _check(pg_pool, organisation, "app-second")
    assert (result.visit, result.held_by_application_id, result.holder_stage) == (VisitUse.HELD, holder, None)


async def test_check_visit_is_read_only_and_answers_the_same_twice(pg_pool: asyncpg.Pool) -> None:
    """Asking twice gives the same answer and writes nothing: no claim for the asker, the holder's untouched."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    await _exchange_at(pg_pool, organisation, Stage.TRAVEL)
    query = "SELECT application_id, claimed_at, released_at FROM organisation_visits WHERE organisation_id = $1"
    before = await pg_pool.fetch(query, organisation)
    first = await _check(pg_pool, organisation, "app-asking")
    assert await _check(pg_pool, organisation, "app-asking") == first
    assert await pg_pool.fetch(query, organisation) == before
