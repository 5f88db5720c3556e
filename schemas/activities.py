"""Inputs and results of the activities the Exchange workflow calls."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectedEvent, ProjectionBatch
from schemas.exchange import ApplicationInput, RuleFailure
from schemas.policy import Policy
from schemas.review import AssignReviewersResult
from schemas.stages import Stage


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScreenApplicationInput(_Message):
    application: ApplicationInput
    policy: Policy
    submitted_at: datetime


class ScreeningResult(_Message):
    eligible: bool
    failures: tuple[RuleFailure, ...]
    working_days: int
    distance_km: float = Field(description="great-circle km to 0.1 km, for people; the rules compare the exact figure")
    policy_version: str
    input_digest: str


class PriceExchangeInput(_Message):
    application: ApplicationInput
    policy: Policy
    actual_end_date: date | None = None


class PricingResult(_Message):
    amount_cents: int
    full_rate_cents: int
    halved_because: tuple[str, ...]
    working_days: int
    distance_km: float = Field(description="great-circle km to 0.1 km, for people; the rules compare the exact figure")
    policy_version: str
    input_digest: str
    # Added with pricing kinds (ADR 0005); defaulted so results recorded before them still deserialise.
    breakdown: tuple[str, ...] = Field(default=(), description="how the amount was reached, line by line")
    calendar_days: int | None = Field(default=None, description="days of the stay, start to end inclusive")


class HoldFundsInput(_Message):
    exchange_id: str
    partnership_id: str
    amount_cents: int = Field(gt=0)
    idempotency_key: str


class HoldFundsResult(_Message):
    held: bool
    transfer_id: int | None = None
    available_cents: int | None = Field(default=None, description="what the budget had when the hold was refused")


class VoidHoldInput(_Message):
    hold_id: int
    idempotency_key: str


class VoidHoldResult(_Message):
    transfer_id: int
    released_cents: int


class PostPaymentInput(_Message):
    """PAYMENT's one unit of work (activities/payments.py): price on the actual end date, post, pay out, order."""

    application: ApplicationInput
    policy: Policy
    actual_end_date: date | None = None
    hold_id: int
    held_cents: int = Field(gt=0)
    grant_cents: int | None = None
    idempotency_key: str
    projection: ProjectionBatch
    sequence: int = Field(ge=1, description="the sequence of the `payment_ordered` event it writes")
    stage: Stage
    now: datetime
    sla_due: datetime


class PostPaymentResult(_Message):
    payment_order_id: str
    posted_cents: int
    released_cents: int
    final: PricingResult
    event: ProjectedEvent


class WorkingDayDeadlineInput(_Message):
    """A deadline `working_days` after `start`, counted on `country`'s calendar."""

    start: datetime
    working_days: int = Field(ge=0)
    country: str


class ClaimVisitInput(_Message):
    organisation_id: str
    application_id: str


class ClaimVisitResult(_Message):
    claimed: bool
    held_by_application_id: str | None = Field(default=None, description="the exchange that holds the visit")


class ReleaseVisitInput(_Message):
    application_id: str
    reason: str


class ReholdFundsInput(_Message):
    """Replace an exchange's hold by one of a new amount, atomically (an amendment of dates)."""

    hold_id: int
    amount_cents: int = Field(gt=0)
    idempotency_key: str


class ReholdFundsResult(_Message):
    held: bool
    transfer_id: int | None = None
    available_cents: int | None = Field(default=None, description="what the budget had when the rehold was refused")


class VisitUse(StrEnum):
    """R7: where the visitor organisation's one visit stands, as another exchange's claim leaves it."""

    FREE = "free"  # no other exchange holds an unreleased claim
    HELD = "held"  # a live exchange holds it; it comes back if that exchange ends without the stay
    USED = "used"  # the exchange that claimed it has ended and the claim stands (paid, forfeited, ...)


class CheckVisitInput(_Message):
    """Read-only R7 question asked at SCREENING; the atomic claim stays at FUNDING (`claim_visit`)."""

    organisation_id: str
    application_id: str = Field(description="the exchange asking: its own claim never counts against it")


class CheckVisitResult(_Message):
    """The answer with its evidence, recorded in the `screening_decided` audit event under `r7`."""

    organisation_id: str
    visit: VisitUse
    held_by_application_id: str | None = Field(default=None, description="the other exchange holding the visit")
    claimed_at: datetime | None = Field(default=None, description="when that exchange claimed it (at its FUNDING)")
    holder_stage: Stage | None = Field(
        default=None, description="that exchange's stage in the read model when checked; None when not projected"
    )


class AdmitApplicationInput(_Message):
    """SUBMITTED to REVIEW in one unit of work (activities/submission.py)."""

    application: ApplicationInput
    workflow_id: str
    run_id: str = Field(
        description="the chain's first run id: a reset run keeps it, so a reset is the same exchange, "
        "while a new start under a closed exchange's id is not"
    )
    started_at: datetime
    now: datetime = Field(description="the workflow's time: the events are stamped with it")
    excluded_reviewer_ids: frozenset[str] = Field(description="who may never review it (the submitter)")


class AdmitApplicationResult(_Message):
    claimed: bool = Field(description="false: another run owns the application id; nothing was written")
    owner_run_id: str
    claimed_at: datetime
    policy: Policy | None = None
    screening: ScreeningResult | None = Field(default=None, description="R1-R7 and the lead time, every failure")
    visit: CheckVisitResult | None = None
    review_due: datetime | None = None
    assignment: AssignReviewersResult | None = None
    events: tuple[ProjectedEvent, ...] = Field(default=(), description="what it wrote, for the workflow to mirror")


class FundExchangeInput(_Message):
    """FUNDING's one unit of work (activities/funding.py): claim the visit, price, hold, enter AGREEMENT."""

    application: ApplicationInput
    policy: Policy
    projection: ProjectionBatch
    hold_key: str
    claim_visit: bool = Field(default=True, description="false once the claim is taken (a retry from the waitlist)")
    first_sequence: int = Field(ge=1)
    now: datetime
    next_deadline: datetime | None = None
    signature_due: datetime = Field(description="AGREEMENT's deadline, for the read model's row")


class FundExchangeResult(_Message):
    claimed: bool
    visit_holder: str | None = None
    pricing: PricingResult | None = None
    held: bool = False
    hold_id: int | None = None
    available_cents: int | None = None
    events: tuple[ProjectedEvent, ...] = ()


class CloseExchangeInput(_Message):
    """Closing's one unit of work (activities/closing.py): void a pending hold, release the visit, the end."""

    projection: ProjectionBatch
    hold_id: int | None = None
    hold_voided: ProjectedEvent | None = Field(
        default=None, description="the `hold_voided` event to write (its reason names the amount) when a hold is voided"
    )
    release_visit_reason: str | None = Field(default=None, description="set: the organisation gets its visit back")
    final: ProjectedEvent | None = Field(description="the terminal stage entered (None: entered already)")


class CloseExchangeResult(_Message):
    released_cents: int = 0
    events: tuple[ProjectedEvent, ...] = ()
