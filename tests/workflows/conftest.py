"""Workers for workflow tests: the real activities, a real Postgres, real Temporal servers."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.evidence import store_evidence
from ledger.evidence_store import FileEvidenceStore
from ledger.review import add_reviewer
from ledger.store import LedgerStore
from schemas.exchange import ExchangeOutcome, ExchangeStatus, Party
from schemas.review import Reviewer, ReviewerRole
from schemas.stages import Stage
from tests.codec_server import CodecEndpoint, serving_codec
from tests.reporting.documents import pdf
from tests.waiting import eventually, within
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
async def codec_endpoint(dev_client: ExchangeClient, pg_pool: asyncpg.Pool) -> AsyncIterator[CodecEndpoint]:
    """The API's codec server for the session's dev server, for the `temporal` CLI (payloads are encrypted)."""
    async with serving_codec(dev_client, pg_pool) as endpoint:
        yield endpoint


@pytest_asyncio.fixture(scope="session")
async def ledger_store(pg_pool: asyncpg.Pool) -> LedgerStore:
    return LedgerStore(pg_pool)


# A workflow's whole remaining life on the time-skipping server, or a short one on the dev server.
RESULT_WITHIN_S = 60
# An update's outcome: recorded in state within one workflow task when a worker runs.
UPDATE_WITHIN_S = 30

# funded_partnership: a new partnership with this many cents allocated, its review panel in place.
Fund = Callable[[int], Awaitable[str]]

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
    """Wait (real time, bounded) until `count` reviewers are assigned and open."""

    def enough(status: ExchangeStatus) -> bool:
        return status.review is not None and sum(a.status == "open" for a in status.review.assignments) >= count

    return await until(client, application_id, enough, f"{count} open reviewer assignments", within_s=30)


async def until(
    client: ExchangeClient,
    application_id: str,
    check: Callable[[ExchangeStatus], bool],
    what: str,
    within_s: float = 15,
) -> ExchangeStatus:
    """Poll the status query (real time, bounded) until `check` holds; fail naming `what` and the last status.

    Each query is bounded by the time left: a query that no worker answers waits (the server gives up only
    after 30 s), it does not raise, so no exception is expected here and none is swallowed.
    """
    return await eventually(
        lambda: client.status(application_id), check, f"{application_id}: {what}", within_s=within_s
    )


async def send_update(
    handle: WorkflowHandle[Any, Any], name: str, payload: object, within_s: float = UPDATE_WITHIN_S
) -> Any:
    """Send an update with the raw SDK (as another service would) and await its outcome, bounded, naming it."""
    return await within(handle.execute_update(name, payload), f"{handle.id}: the outcome of update {name}", within_s)


async def result_of(client: ExchangeClient, application_id: str, within_s: float = RESULT_WITHIN_S) -> ExchangeOutcome:
    """The exchange's outcome once its workflow ends (bounded), failing with a message naming the exchange."""
    return await within(client.result(application_id), f"{application_id}: the exchange's outcome", within_s)


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
    await until(client, application_id, lambda s: s.stage is not Stage.AGREEMENT, "a stage past AGREEMENT")


async def uploaded_evidence(pool: asyncpg.Pool, application_id: str) -> list[dict[str, object]]:
    """Upload a small boarding pass (a real one-page PDF, unique bytes) for the exchange; return report items."""
    store = FileEvidenceStore(Path(tempfile.gettempdir()) / "cx-test-evidence")
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
    client: ExchangeClient, application_id: str, stage: Stage, within_s: float = 30
) -> ExchangeStatus:
    """Poll the status query (real time, bounded) until the exchange reaches `stage`.

    No exception is let through as "not yet": a status query during a worker's start is not an error, it waits
    for the worker (and each query is bounded by the time left), while anything raised (an unknown exchange,
    a closed connection) is a real failure that the old catch-all used to hide until the limit.
    """
    return await until(client, application_id, lambda s: s.stage == stage, f"stage {stage.value}", within_s)
