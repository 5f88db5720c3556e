"""DEMO MODE: sample exchanges, and a driver that acts for reviewers, signatories, travellers and finance.

The samples are dated in the recent past, as a back office migrating records of exchanges already
under way would import them (each carries its original `submitted_at`; deadlines for people count
from when their step starts). So the stays are real, multi-day stays, the Temporal clock is never
faked, and the travel timers of stays that are already over fire at once (docs/adr/0004-demo-dates.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from clients.client import DecisionRefused, DuplicateApplication, ExchangeClient, ExchangeClientError
from ledger.progress import Progress
from rules.calendar import working_days
from schemas.exchange import ApplicationInput, EvidenceItem, ExchangeStatus, Party
from schemas.review_state import ReviewState
from schemas.stages import Stage

DEMO_PREFIX = "demo"
REVIEW_CRITERIA = ("relevance", "agenda_quality", "expected_impact")  # policy 2022.1's rubric


class Plan(StrEnum):
    PAID = "paid"
    PAID_SHORTENED = "paid_shortened"
    INELIGIBLE = "ineligible"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"


_ORGS: dict[str, dict[str, Any]] = {
    "krakow": {
        "name": "Krakow Photonics Cluster",
        "type": "cluster_organisation",
        "country": "PL",
        "latitude": 50.0647,
        "longitude": 19.9450,
    },
    "lyon": {
        "name": "Lyon Optics Hub",
        "type": "scale_up_support",
        "country": "FR",
        "latitude": 45.7640,
        "longitude": 4.8357,
    },
    "tampere": {
        "name": "Tampere Smart Textiles",
        "type": "sme",
        "country": "FI",
        "latitude": 61.4978,
        "longitude": 23.7610,
        "member_of_profiled_cluster": True,
    },
    "porto": {
        "name": "Porto AgriFood Network",
        "type": "business_network",
        "country": "PT",
        "latitude": 41.1579,
        "longitude": -8.6291,
    },
    "zagreb": {
        "name": "Zagreb Hemp Innovation",
        "type": "cluster_organisation",
        "country": "HR",
        "latitude": 45.8150,
        "longitude": 15.9819,
    },
    "bratislava": {
        "name": "Bratislava Medtech Lab",
        "type": "scale_up_support",
        "country": "SK",
        "latitude": 48.1486,
        "longitude": 17.1077,
        "cluster_member": True,  # R1: a scaling-up support organisation visits as a cluster member
    },
    "vienna": {
        "name": "Vienna Health Cluster",
        "type": "cluster_organisation",
        "country": "AT",
        "latitude": 48.2082,
        "longitude": 16.3738,
    },
    "eindhoven": {
        "name": "Eindhoven High Tech Campus",
        "type": "large_company",
        "country": "NL",
        "latitude": 51.4416,
        "longitude": 5.4697,
    },
    "cluj": {
        "name": "Cluj IT Cluster",
        "type": "cluster_organisation",
        "country": "RO",
        "latitude": 46.7712,
        "longitude": 23.6236,
    },
    "tallinn": {
        "name": "Tallinn Green Energy",
        "type": "sme",
        "country": "EE",
        "latitude": 59.4370,
        "longitude": 24.7536,
        "member_of_profiled_cluster": True,
    },
    "bologna": {
        "name": "Bologna Mechatronics Network",
        "type": "business_network",
        "country": "IT",
        "latitude": 44.4949,
        "longitude": 11.3426,
    },
    "gdansk": {
        "name": "Gdansk Maritime Cluster",
        "type": "cluster_organisation",
        "country": "PL",
        "latitude": 54.3520,
        "longitude": 18.6466,
    },
    "skopje": {
        "name": "Skopje Food Tech",
        "type": "sme",
        "country": "MK",
        "latitude": 41.9981,
        "longitude": 21.4254,
        "member_of_profiled_cluster": True,
    },
    "lisbon": {
        "name": "Lisbon Public Innovation Agency",
        "type": "public_authority",
        "country": "PT",
        "latitude": 38.7223,
        "longitude": -9.1393,
    },
}

# (number, visitor, host, visitor's partnership, host's partnership, plan)
_SAMPLES: list[tuple[int, str, str, str, str, Plan]] = [
    (1, "krakow", "lyon", "photonics4i", "photonics4i", Plan.PAID),
    (2, "tampere", "porto", "hitechtex", "agrifoodx", Plan.PAID),
    (3, "zagreb", "eindhoven", "hempclub", "ce4big", Plan.PAID),
    (4, "bratislava", "vienna", "medicnest", "medicnest", Plan.PAID),  # 55 km apart: halved
    (5, "cluj", "tallinn", "epix", "greentech", Plan.PAID_SHORTENED),
    (6, "bologna", "gdansk", "biginn", "bluecoast", Plan.PAID),
    (7, "skopje", "bologna", "agrifoodx", "biginn", Plan.PAID),
    (8, "tallinn", "krakow", "greentech", "photonics4i", Plan.PAID),
    (9, "gdansk", "krakow", "bluecoast", "photonics4i", Plan.INELIGIBLE),  # same country (R5)
    (10, "porto", "cluj", "agrifoodx", "epix", Plan.REJECTED),
    (11, "vienna", "zagreb", "medicnest", "hempclub", Plan.CANCELLED),
    (12, "lisbon", "tampere", "danubemob", "hitechtex", Plan.INELIGIBLE),  # a public authority may only host (R1)
    (13, "porto", "zagreb", "aegeansun", "hempclub", Plan.WITHDRAWN),
]


@dataclass(frozen=True)
class Sample:
    application: ApplicationInput
    plan: Plan


def _recent_full_week(weeks_ago: int, country: str, today: date) -> tuple[date, date]:
    """A Monday-to-Friday stay that started about `weeks_ago` weeks ago, with 5 working days in `country`.

    Recent enough that the report deadline (30 days after the stay) is still ahead.
    """
    monday = today - timedelta(days=7 * weeks_ago)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday -= timedelta(days=7)
    return monday, monday + timedelta(days=4)


def demo_samples(today: date) -> list[Sample]:
    samples = []
    for number, visitor, host, visitor_partnership, host_partnership, plan in _SAMPLES:
        start, end = _recent_full_week(2 + number % 2, _ORGS[host]["country"], today)
        submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
        visitor_org = {"organisation_id": f"org-{visitor}", **_ORGS[visitor]}
        application = ApplicationInput.model_validate(
            {
                "application_id": f"{DEMO_PREFIX}-{number:02d}",
                "visitor": visitor_org,
                "host": {"organisation_id": f"org-{host}", **_ORGS[host]},
                "visitor_partnership_id": visitor_partnership,
                "host_partnership_id": host_partnership,
                "start_date": start,
                "end_date": end,
                "goals": f"Exchange {number}: learn from {_ORGS[host]['name']}.",
                "submitted_by": "officer-import",
                "submitted_at": submitted_at,
            }
        )
        samples.append(Sample(application=application, plan=plan))
    return samples


Upload = Callable[[str], Awaitable[EvidenceItem]]


async def _review(client: ExchangeClient, sample: Sample, review: ReviewState) -> str | None:
    """REVIEW: every reviewer with an open assignment recommends (rejects the plan to be rejected)."""
    rejected = sample.plan is Plan.REJECTED
    recommendation = "reject" if rejected else "approve"
    comment = "Agenda does not match the partnership's goals." if rejected else "Strong agenda."
    done = []
    for assignment in review.assignments:
        if assignment.status != "open":
            continue
        await client.submit_review(
            sample.application.application_id,
            {
                "actor_id": assignment.reviewer_id,
                "recommendation": recommendation,
                "scores": dict.fromkeys(REVIEW_CRITERIA, 2 if rejected else 4),
                "comment": comment,
            },
        )
        done.append(assignment.reviewer_id)
    return f"reviewers {', '.join(done)}: {recommendation}" if done else None


async def _cancel(client: ExchangeClient, sample: Sample) -> str:
    """AGREEMENT, the plan to be cancelled: an officer cancels."""
    reason = "host organisation closed its lab"
    await client.cancel(sample.application.application_id, {"actor_id": "officer-olga", "reason": reason})
    return "officer: cancel"


async def _withdraw(client: ExchangeClient, sample: Sample) -> str:
    """AGREEMENT, the plan to be withdrawn: the visitor withdraws."""
    reason = "traveller fell ill"
    await client.withdraw(sample.application.application_id, {"actor_id": "visitor-contact", "reason": reason})
    return "visitor: withdraw"


async def _agree(client: ExchangeClient, sample: Sample, status: ExchangeStatus) -> str | None:
    """AGREEMENT: every party that has not signed signs, and each side that has not confirms the match."""
    app_id = sample.application.application_id
    missing = [p for p in Party if p not in status.signatures]
    for party in missing:
        await client.sign_commitment(
            app_id,
            {
                "actor_id": f"{party.value.lower()}-signatory",
                "party": party,
                "on_behalf_of": status.parties[party],
            },
        )
    sides = [s for s in ("host", "visitor") if s not in status.match_confirmed_by]
    for side in sides:
        party = Party.HOST_ORGANISATION if side == "host" else Party.VISITOR_ORGANISATION
        confirmation = {"actor_id": f"{side}-contact", "side": side, "on_behalf_of": status.parties[party]}
        await client.decide(app_id, "confirm_match", confirmation)
    done = [p.value for p in missing] + [f"{s} confirmed the match" for s in sides]
    return f"agreement: {', '.join(done)}" if done else None


async def _submit_report(client: ExchangeClient, sample: Sample, upload: Upload) -> str:
    """REPORTING: the traveller submits the closing report with a boarding pass (a shortened stay says so)."""
    app = sample.application
    actual_end = app.start_date + timedelta(days=2) if sample.plan is Plan.PAID_SHORTENED else None
    await client.submit_report(
        app.application_id,
        {
            "actor_id": "visitor-traveller",
            "summary": "Closing report: goals met, agenda followed.",
            "actual_end_date": actual_end,
            "evidence": [(await upload(app.application_id)).model_dump()],
        },
    )
    return "traveller: report submitted" + (" (stay shortened to 3 days)" if actual_end else "")


async def _validate_report(client: ExchangeClient, sample: Sample, status: ExchangeStatus) -> str:
    """REPORTING, once the report is in: the visitor's partnership accepts it."""
    vop = status.parties[Party.VISITOR_PARTNERSHIP]
    await client.validate_report(
        sample.application.application_id, {"actor_id": "vop-validator", "decision": "accept", "on_behalf_of": vop}
    )
    return "VOP: report accepted"


async def _confirm_payment(client: ExchangeClient, sample: Sample, status: ExchangeStatus) -> str:
    """PAYMENT, once finance has the order: finance confirms the transfer."""
    app_id = sample.application.application_id
    await client.confirm_payment(
        app_id,
        {
            "payment_order_id": status.payment_order_id,
            "amount_cents": status.paid_cents,
            "payment_reference": f"SEPA-{app_id}",
            "confirmed_by": "finance",
        },
    )
    return "finance: order received by signed webhook; payment confirmed"


async def _act(
    client: ExchangeClient,
    sample: Sample,
    status: ExchangeStatus,
    upload: Upload,
    payment_order_received: Callable[[str], bool],
) -> str | None:
    """Do what the next person would do at this stage; return a description, or None if nothing to do."""
    plan = sample.plan
    match status.stage:
        case Stage.REVIEW if status.review is not None:
            return await _review(client, sample, status.review)
        case Stage.AGREEMENT if plan is Plan.CANCELLED:
            return await _cancel(client, sample)
        case Stage.AGREEMENT if plan is Plan.WITHDRAWN:
            return await _withdraw(client, sample)
        case Stage.AGREEMENT:
            return await _agree(client, sample, status)
        case Stage.REPORTING if not status.report_submitted:
            return await _submit_report(client, sample, upload)
        case Stage.REPORTING:
            return await _validate_report(client, sample, status)
        case Stage.PAYMENT if (
            status.payment_order_id
            and not status.payment_reference
            and payment_order_received(sample.application.application_id)
        ):
            return await _confirm_payment(client, sample, status)
    return None


ReadProgress = Callable[[Sequence[str]], Awaitable[Mapping[str, Progress]]]


@dataclass
class _Seen:
    """What the driver last learnt of one sample from its workflow."""

    progress: Progress | None  # the read model's row when `status` was queried (None: not projected yet)
    queried_at: float  # the event loop's clock
    status: ExchangeStatus
    idle: bool = False  # acting on `status` found nothing to do (finance may not have the order yet)


class _Driver:
    """One round: read every unsettled sample's progress from the read model in one statement, then query the
    workflow (a Temporal query: an action on Temporal Cloud, issue 12) only for the samples that moved.

    A sample is queried when it never was, when its read-model row changed (or appeared) since its last query,
    or `requery_after_s` after that query whatever the row says, so that a lagging or failed projection slows
    the demo down and never stalls it. A terminal stage in the read model settles the sample without a query:
    nothing can be done for it. When acting on the last status found nothing to do, the driver acts on it again
    each round: what it waits for (finance receiving the payment order) is outside the workflow.
    """

    def __init__(
        self,
        client: ExchangeClient,
        report: Callable[[str], None],
        upload: Upload,
        payment_order_received: Callable[[str], bool],
        read_progress: ReadProgress,
        requery_after_s: float,
    ) -> None:
        self.client = client
        self.report = report
        self.upload = upload
        self.payment_order_received = payment_order_received
        self.read_progress = read_progress
        self.requery_after_s = requery_after_s
        self.stages: dict[str, Stage] = {}
        self.seen: dict[str, _Seen] = {}
        self.status_queries = 0

    async def round(self, samples: list[Sample]) -> None:
        unsettled = [
            s for s in samples if not self.stages.get(s.application.application_id, Stage.SUBMITTED).is_terminal
        ]
        rows = await self.read_progress([s.application.application_id for s in unsettled])
        for sample in unsettled:
            await self._look(sample, rows.get(sample.application.application_id))

    async def _look(self, sample: Sample, row: Progress | None) -> None:
        app_id = sample.application.application_id
        if row is not None and row.stage.is_terminal:
            self._saw(app_id, row.stage)
            return
        status = await self._status(app_id, row)
        if status is None:
            return
        seen = self.seen[app_id]
        try:
            action = await _act(self.client, sample, status, self.upload, self.payment_order_received)
        except DecisionRefused:
            # A decision taken in an earlier run, or the stage moved on meanwhile: the read model says when.
            seen.idle = False
            return
        seen.idle = action is None
        if action:
            self.report(f"{app_id}: {action}")

    async def _status(self, app_id: str, row: Progress | None) -> ExchangeStatus | None:
        """The status to act on: queried if the sample moved (or is due), the last one if acting again may
        help, else None (nothing to do until the read model moves)."""
        seen = self.seen.get(app_id)
        now = asyncio.get_running_loop().time()
        if seen is not None and row == seen.progress and now - seen.queried_at < self.requery_after_s:
            return seen.status if seen.idle else None
        self.status_queries += 1
        try:
            status = await self.client.status(app_id)
        except ExchangeClientError:
            return None  # not queryable yet (its first task is still running): look again next round
        self.seen[app_id] = _Seen(row, now, status)
        self._saw(app_id, status.stage)
        return status

    def _saw(self, app_id: str, stage: Stage) -> None:
        if self.stages.get(app_id) is not stage:
            self.report(f"{app_id}: {stage.value}")
            self.stages[app_id] = stage


async def _start(client: ExchangeClient, samples: list[Sample], report: Callable[[str], None]) -> None:
    """Start each sample once; a sample started by an earlier run is resumed."""
    for sample in samples:
        try:
            await client.start_exchange(sample.application)
            report(f"{sample.application.application_id}: submitted ({sample.plan.value})")
        except DuplicateApplication:
            report(f"{sample.application.application_id}: already started, resuming")


async def drive(
    client: ExchangeClient,
    samples: list[Sample],
    report: Callable[[str], None],
    stop: asyncio.Event,
    upload: Upload,
    read_progress: ReadProgress,
    poll_interval_s: float = 0.3,
    payment_order_received: Callable[[str], bool] = lambda application_id: True,
    max_duration_s: float = 600.0,
    requery_after_s: float = 5.0,
) -> dict[str, Stage]:
    """Start each sample (once) and act for people until every sample is settled or `stop` is set.

    `read_progress` reads the read model's progress of the exchanges it names (ledger/progress.py
    `exchange_progress` on the engine's database); the last line reported counts the status queries made.
    """
    await _start(client, samples, report)
    driver = _Driver(client, report, upload, payment_order_received, read_progress, requery_after_s)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + max_duration_s
    while not stop.is_set():
        if loop.time() > give_up_at:
            unsettled = [a for a, s in driver.stages.items() if not s.is_terminal]
            report(f"gave up after {max_duration_s:.0f} s; unsettled: {unsettled}")
            break
        await driver.round(samples)
        if all(s.is_terminal for s in driver.stages.values()) and len(driver.stages) == len(samples):
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_interval_s)
    settled = sum(1 for s in driver.stages.values() if s.is_terminal)
    report(f"{settled} of {len(samples)} samples settled; status queries: {driver.status_queries}")
    return driver.stages
