"""Workers for workflow tests: the real activities, a real Postgres, real Temporal servers."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.evidence import EvidenceStore, store_evidence
from ledger.review import add_reviewer
from ledger.store import LedgerStore
from schemas.exchange import ExchangeStatus, Party
from schemas.review import Reviewer, ReviewerRole
from schemas.stages import Stage
from tests.evidence.documents import pdf
from workers.main import build_worker


@pytest_asyncio.fixture
async def ts_client(time_skipping_env: WorkflowEnvironment, pg_pool: asyncpg.Pool) -> AsyncIterator[ExchangeClient]:
    """An ExchangeClient on the time-skipping server, with a worker running the real activities."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(time_skipping_env.client, pg_pool, task_queue)
    async with worker:
        yield ExchangeClient(time_skipping_env.client, task_queue)


@pytest_asyncio.fixture(scope="session")
async def dev_client(dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool) -> AsyncIterator[ExchangeClient]:
    """An ExchangeClient on the dev server, with a worker running the real activities."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(dev_server_env.client, pg_pool, task_queue)
    async with worker:
        yield ExchangeClient(dev_server_env.client, task_queue)


@pytest_asyncio.fixture(scope="session")
async def ledger_store(pg_pool: asyncpg.Pool) -> LedgerStore:
    return LedgerStore(pg_pool)


REVIEWERS = ("rev-a", "rev-b", "rev-c")
OFFICER = "officer"


def panel_member(partnership_id: str, name: str) -> str:
    return f"{name}-{partnership_id}"


async def add_review_panel(pool: asyncpg.Pool, partnership_id: str) -> None:
    """Three reviewers from three organisations and one programme officer for the partnership."""
    async with pool.acquire() as conn:
        for index, name in enumerate((*REVIEWERS, OFFICER)):
            role = ReviewerRole.PROGRAMME_OFFICER if name == OFFICER else ReviewerRole.REVIEWER
            await add_reviewer(
                conn,
                Reviewer(
                    reviewer_id=panel_member(partnership_id, name),
                    name=name,
                    organisation_id=f"org{index}-{partnership_id}",
                    country="BE",
                    partnership_id=partnership_id,
                    roles=frozenset({role}),
                ),
            )


async def approve(client: ExchangeClient, application_id: str, score: int = 4) -> None:
    """Every assigned reviewer approves with the same score on each criterion."""
    status = await assigned(client, application_id)
    assert status.review is not None
    for assignment in status.review.assignments:
        if assignment.status == "open":
            await client.submit_review(application_id, review(assignment.reviewer_id, score))


async def assigned(client: ExchangeClient, application_id: str, count: int = 2) -> ExchangeStatus:
    """Wait (real time) until `count` reviewers are assigned and open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        status = await client.status(application_id)
        if status.review and sum(a.status == "open" for a in status.review.assignments) >= count:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{application_id}: reviewers not assigned; last status {status}")


async def until(
    client: ExchangeClient, application_id: str, check: Callable[[ExchangeStatus], bool], within_s: float = 15
) -> ExchangeStatus:
    """Poll the status query (real time, bounded) until `check` holds."""
    status = await client.status(application_id)
    for _ in range(int(within_s / 0.05)):
        if check(status):
            return status
        await asyncio.sleep(0.05)
        status = await client.status(application_id)
    raise AssertionError(f"{application_id}: condition never held; last status {status}")


async def agree(client: ExchangeClient, application_id: str) -> None:
    """R10: the four parties sign and both sides confirm the match; the exchange moves to TRAVEL."""
    parties = (await client.status(application_id)).parties
    for party in Party:
        await client.sign_commitment(
            application_id, {"actor_id": f"signer-{party.value}", "party": party.value, "on_behalf_of": parties[party]}
        )
    for side, party in (("host", Party.HOST_ORGANISATION), ("visitor", Party.VISITOR_ORGANISATION)):
        await client.decide(
            application_id,
            "confirm_match",
            {"actor_id": f"{side}-contact", "side": side, "on_behalf_of": parties[party]},
        )
    await until(client, application_id, lambda s: s.stage is not Stage.AGREEMENT)  # TRAVEL, or past it


async def uploaded_evidence(pool: asyncpg.Pool, application_id: str) -> list[dict[str, object]]:
    """Upload a small boarding pass (a real one-page PDF, unique bytes) for the exchange; return report items."""
    store = EvidenceStore(Path(tempfile.gettempdir()) / "cx-test-evidence")
    content = pdf(f"boarding pass for {application_id}")
    async with pool.acquire() as conn:
        item = await store_evidence(
            conn,
            store,
            application_id=application_id,
            path_or_bytes=content,
            name="boarding-pass.pdf",
            kind="boarding_pass",
            uploaded_by="visitor",
        )
    return [item.model_dump()]


async def validate(
    client: ExchangeClient, application_id: str, decision: str = "accept", reasons: str = "", actor: str = "vop-victor"
) -> ExchangeStatus:
    """The VOP validates the report: acting for the visitor's partnership, as R10 and issue 11 require."""
    vop = (await client.status(application_id)).parties[Party.VISITOR_PARTNERSHIP]
    payload = {"actor_id": actor, "decision": decision, "on_behalf_of": vop} | ({"reasons": reasons} if reasons else {})
    return await client.validate_report(application_id, payload)


def review(reviewer_id: str, score: int = 4, recommendation: str = "approve") -> dict[str, object]:
    criteria = ("relevance", "agenda_quality", "expected_impact")
    return {"actor_id": reviewer_id, "recommendation": recommendation, "scores": dict.fromkeys(criteria, score)}


@pytest_asyncio.fixture
async def funded_partnership(ledger_store: LedgerStore, pg_pool: asyncpg.Pool) -> Callable[[int], Awaitable[str]]:
    """Create a partnership budget of the given size (cents) and its review panel; return its id."""

    async def fund(amount_cents: int) -> str:
        partnership_id = f"p-{uuid.uuid4().hex[:10]}"
        await ledger_store.allocate(
            idempotency_key=f"{partnership_id}:allocate:1", partnership_id=partnership_id, amount_cents=amount_cents
        )
        await add_review_panel(pg_pool, partnership_id)
        return partnership_id

    return fund


async def wait_for_stage(
    client: ExchangeClient, application_id: str, stage: Stage, within: timedelta = timedelta(seconds=30)
) -> ExchangeStatus:
    """Poll the status query (real time) until the exchange reaches `stage`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    status: ExchangeStatus | None = None
    while loop.time() < deadline:
        try:
            status = await client.status(application_id)
        except Exception:
            status = None
        if status is not None and status.stage == stage:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{application_id} did not reach {stage}; last status: {status}")
