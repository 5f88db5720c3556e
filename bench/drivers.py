"""Automatic actors for the lifecycle benchmark: reviewers, signatories, traveller, VOP, finance, and bare twins.

Exchanges are imported the demo's way (docs/adr/0004-demo-dates.md): submitted 35 days before a stay
that ended about three weeks ago, so the travel timers are already due and a run ends in real time.
Actors wait for a stage by reading the Postgres read model, many exchanges per query, never with the
`status` query (a query is a billable action, and a cost no real actor should impose); they act through
`ExchangeClient` (updates and the `confirm_payment` signal), exactly as the REST API does. Every
update's round trip is timed; every update and signal sent is counted, so that rejected updates
(billed, absent from history) can be added to the actions counted from histories.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from pypdf import PdfWriter
from temporalio.client import Client

from bench.bare import BARE_WORKFLOW_TYPE, SIGNAL_NAME, UPDATE_NAME, PhaseNotifier
from bench.plan import BarePlan
from clients.client import DecisionRefused
from ledger.evidence import EvidenceStore, store_evidence
from rules.calendar import working_days
from schemas.errors import Refusal
from schemas.exchange import ApplicationInput, Party
from schemas.stages import Stage

REVIEW_CRITERIA = ("relevance", "agenda_quality", "expected_impact")  # policy 2022.1's rubric
WAIT_LIMIT_S = 900.0  # no single wait of an actor may take longer: the run is broken, not slow
RETRY_LIMIT = 50  # refusals of one decision before the driver gives up (a race it lost, at most a few)
RETRY_PAUSE_S = 0.05
# How often actors read the read model; the bare driver notices a phase on the same tick (bench/bare.py).
READ_MODEL_INTERVAL_S = 0.02
# "In REVIEW and ready for reviews": the audit row the workflow projects once it has taken in the
# reviewers' assignment (so a review sent from then on is not refused for coming early). If the
# projection changes, this is the one place to change (the actors and the intake both read it).
READY_FOR_REVIEW_SQL = """
    SELECT DISTINCT application_id FROM audit_events
     WHERE event = 'reviewers_assigned' AND application_id = ANY($1::text[])"""
# Refusals that mean "not yet" (the workflow has not processed what the read model already shows).
NOT_YET = {Refusal.WRONG_STAGE.value, Refusal.NOT_ALLOWED.value}


def stay_that_ended_weeks_ago(today: date, country: str) -> tuple[date, date]:
    """A Monday-to-Friday stay with 5 working days in `country`, ended about three weeks ago, so that its
    travel timers are due and its report deadline (30 days after the stay) is still ahead."""
    monday = today - timedelta(days=28)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday -= timedelta(days=7)
    return monday, monday + timedelta(days=4)


def bench_application(application_id: str, partnership_id: str, today: date) -> ApplicationInput:
    """An eligible application (Krakow visiting Lyon: far enough for the full lump sum), own organisations."""
    start, end = stay_that_ended_weeks_ago(today, "FR")
    return ApplicationInput.model_validate(
        {
            "application_id": application_id,
            "visitor": {
                "organisation_id": f"org-v-{application_id}",
                "name": "Krakow Photonics Cluster",
                "type": "cluster_organisation",
                "country": "PL",
                "latitude": 50.0647,
                "longitude": 19.9450,
            },
            "host": {
                "organisation_id": f"org-h-{application_id}",
                "name": "Lyon Optics Hub",
                "type": "scale_up_support",
                "country": "FR",
                "latitude": 45.7640,
                "longitude": 4.8357,
            },
            "visitor_partnership_id": partnership_id,
            "host_partnership_id": partnership_id,
            "start_date": start,
            "end_date": end,
            "goals": "Learn how the host runs its shared clean-room.",
            "submitted_by": "officer-bench",
            "submitted_at": datetime.combine(start - timedelta(days=35), clock_time(9, 30), tzinfo=UTC),
        }
    )


async def upload_evidence(pool: asyncpg.Pool, store_dir: Path, application_id: str) -> dict[str, Any]:
    """The traveller's boarding pass, uploaded before the report (as `cx evidence add` would)."""
    content = await asyncio.to_thread(boarding_pass, application_id)
    async with pool.acquire() as conn:
        item = await store_evidence(
            conn,
            EvidenceStore(store_dir),
            application_id=application_id,
            path_or_bytes=content,
            name="boarding-pass.pdf",
            kind="boarding_pass",
            uploaded_by="visitor-traveller",
        )
    return item.model_dump()


def boarding_pass(application_id: str) -> bytes:
    """A real one-page PDF (evidence is parsed whole), unique to the exchange (the store is addressed by SHA-256)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": f"Boarding pass for {application_id}"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class Recorder:
    """Round trips of updates by name, and what was sent (per workflow id for updates)."""

    latencies_s: dict[str, list[float]] = field(default_factory=dict)
    updates_sent: Counter[str] = field(default_factory=Counter)
    updates_refused: int = 0
    signals_sent: int = 0
    queries_sent: int = 0  # the drivers never query; kept so that the report states it

    async def update(self, workflow_id: str, name: str, call: Callable[[], Awaitable[object]]) -> None:
        """Send an update, retrying a "not yet" refusal (each refusal is a billed, rejected update)."""
        for _ in range(RETRY_LIMIT):
            self.updates_sent[workflow_id] += 1
            started = time.perf_counter()
            try:
                await call()
            except DecisionRefused as refusal:
                if refusal.refusal not in NOT_YET:
                    raise
                self.updates_refused += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            self.latencies_s.setdefault(name, []).append(time.perf_counter() - started)
            return
        raise RuntimeError(f"{workflow_id}: {name} refused {RETRY_LIMIT} times")

    def all_latencies_s(self) -> list[float]:
        return [x for values in self.latencies_s.values() for x in values]


class ReadModel:
    """Waits for exchanges to reach a point of their life by reading Postgres: one query per kind per tick."""

    _STAGES = "SELECT application_id, stage FROM exchanges WHERE application_id = ANY($1::text[])"
    # Ready for reviews (READY_FOR_REVIEW_SQL); the open assignments name the reviewers.
    _REVIEWERS = f"""
        SELECT ra.application_id, array_agg(ra.reviewer_id ORDER BY ra.reviewer_id) AS reviewers
          FROM review_assignments ra
         WHERE ra.status = 'open' AND ra.application_id IN ({READY_FOR_REVIEW_SQL})
         GROUP BY ra.application_id"""  # noqa: S608 - composed of constant SQL only, no input
    _ORDERS = """SELECT application_id, payment_order_id, amount_cents FROM payment_orders
                  WHERE application_id = ANY($1::text[])"""

    def __init__(self, pool: asyncpg.Pool, interval_s: float = READ_MODEL_INTERVAL_S) -> None:
        self._pool = pool
        self._interval_s = interval_s
        # application id -> (what: "reviewers" | "order" | a stage name, the future to resolve)
        self._waiting: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._wake = asyncio.Event()
        self.polls = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReadModel]:
        task = asyncio.create_task(self._poll_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def reviewers(self, application_id: str) -> list[str]:
        reviewers: list[str] = await self._wait(application_id, "reviewers")
        return reviewers

    async def stage(self, application_id: str, stage: Stage) -> None:
        await self._wait(application_id, stage.value)

    async def payment_order(self, application_id: str) -> tuple[str, int]:
        order: tuple[str, int] = await self._wait(application_id, "order")
        return order

    async def _wait(self, application_id: str, what: str) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[application_id] = (what, future)
        self._wake.set()
        try:
            return await asyncio.wait_for(future, WAIT_LIMIT_S)
        except TimeoutError:
            raise TimeoutError(f"{application_id}: never reached {what} within {WAIT_LIMIT_S:.0f} s") from None
        finally:
            self._waiting.pop(application_id, None)

    async def _poll_forever(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._interval_s)
            await self._poll()

    async def _poll(self) -> None:
        self.polls += 1
        waiting = dict(self._waiting)
        ids = list(waiting)
        stages = {r["application_id"]: r["stage"] for r in await self._pool.fetch(self._STAGES, ids)}
        reviewers: dict[str, list[str]] = {}
        orders: dict[str, tuple[str, int]] = {}
        if any(what == "reviewers" for what, _ in waiting.values()):
            rows = await self._pool.fetch(self._REVIEWERS, ids)
            reviewers = {r["application_id"]: list(r["reviewers"]) for r in rows}
        if any(what == "order" for what, _ in waiting.values()):
            rows = await self._pool.fetch(self._ORDERS, ids)
            orders = {r["application_id"]: (r["payment_order_id"], r["amount_cents"]) for r in rows}
        for application_id, (what, future) in waiting.items():
            if future.done():
                continue
            stage = stages.get(application_id)
            if what == "reviewers" and application_id in reviewers:
                future.set_result(reviewers[application_id])
            elif what == "order" and application_id in orders:
                future.set_result(orders[application_id])
            elif stage == what:
                future.set_result(None)
            elif stage is not None and Stage(stage).is_terminal:
                future.set_exception(RuntimeError(f"{application_id}: ended {stage} while waiting for {what}"))


Upload = Callable[[str], Awaitable[dict[str, Any]]]


class ExchangeActions(Protocol):
    """What the actors send: `ExchangeClient` (through Temporal) or bench/api_actors.py (over the REST API)."""

    async def start_exchange(self, application: ApplicationInput) -> object: ...

    async def decide(self, application_id: str, update: str, payload: Mapping[str, Any]) -> object: ...

    async def confirm_payment(self, application_id: str, confirmation: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Finance:
    """How finance learns of an exchange's payment order (id, amount), and how the driver sees it PAID."""

    payment_order: Callable[[str], Awaitable[tuple[str, int]]]
    paid: Callable[[str], Awaitable[None]]


async def drive_exchange(
    client: ExchangeActions,
    app: ApplicationInput,
    upload: Upload,
    read_model: ReadModel,
    record: Recorder,
    finance: Finance,
) -> None:
    """One exchange from start to PAID, every person acting as soon as the read model shows their turn."""
    app_id = app.application_id
    workflow_id = f"exchange:{app_id}"
    await client.start_exchange(app)
    for reviewer in await read_model.reviewers(app_id):
        review = {"actor_id": reviewer, "recommendation": "approve", "scores": dict.fromkeys(REVIEW_CRITERIA, 4)}
        await record.update(workflow_id, "submit_review", partial(client.decide, app_id, "submit_review", review))
    await read_model.stage(app_id, Stage.AGREEMENT)
    parties = {
        Party.HOST_ORGANISATION: app.host.organisation_id,
        Party.HOST_PARTNERSHIP: app.host_partnership_id,
        Party.VISITOR_ORGANISATION: app.visitor.organisation_id,
        Party.VISITOR_PARTNERSHIP: app.visitor_partnership_id,
    }
    for party, on_behalf_of in parties.items():
        signature = {"actor_id": f"signatory-{party.value}", "party": party.value, "on_behalf_of": on_behalf_of}
        sign = partial(client.decide, app_id, "sign_commitment", signature)
        await record.update(workflow_id, "sign_commitment", sign)
    for side, party in (("host", Party.HOST_ORGANISATION), ("visitor", Party.VISITOR_ORGANISATION)):
        match = {"actor_id": f"{side}-contact", "side": side, "on_behalf_of": parties[party]}
        await record.update(workflow_id, "confirm_match", partial(client.decide, app_id, "confirm_match", match))
    await read_model.stage(app_id, Stage.REPORTING)
    evidence = await upload(app_id)  # evidence is uploaded for a started exchange, then reported
    report = {"actor_id": "visitor-traveller", "summary": "Closing report: goals met.", "evidence": [evidence]}
    await record.update(workflow_id, "submit_report", partial(client.decide, app_id, "submit_report", report))
    validation = {"actor_id": "vop-validator", "decision": "accept", "on_behalf_of": app.visitor_partnership_id}
    await record.update(workflow_id, "validate_report", partial(client.decide, app_id, "validate_report", validation))
    order_id, amount_cents = await finance.payment_order(app_id)
    confirmation = {
        "payment_order_id": order_id,
        "amount_cents": amount_cents,
        "payment_reference": f"SEPA-{app_id}",
        "confirmed_by": "finance-bench",
    }
    await client.confirm_payment(app_id, confirmation)
    record.signals_sent += 1
    await finance.paid(app_id)


async def drive_bare(
    client: Client, plan: BarePlan, workflow_id: str, task_queue: str, notifier: PhaseNotifier, record: Recorder
) -> None:
    """One bare run: the same messages as an exchange, each phase's sent once the run has reached it."""
    handle = await client.start_workflow(BARE_WORKFLOW_TYPE, plan, id=workflow_id, task_queue=task_queue)
    index = 0
    for k, phase in enumerate(plan.phases):
        if not phase.messages:
            continue
        if phase.activities:
            await asyncio.wait_for(notifier.wait(workflow_id, k), WAIT_LIMIT_S)
        for message in phase.messages:
            if message.kind == "update":
                await record.update(workflow_id, message.name, partial(handle.execute_update, UPDATE_NAME, index))
            else:
                await handle.signal(SIGNAL_NAME, index)
                record.signals_sent += 1
            index += 1
    received = await asyncio.wait_for(handle.result(), WAIT_LIMIT_S)
    if received != index:
        raise RuntimeError(f"{workflow_id}: counted {received} messages of {index}")
