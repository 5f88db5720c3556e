"""Inputs and results of the activities the Exchange workflow calls."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.exchange import ApplicationInput, RuleFailure
from schemas.policy import Policy
from schemas.stages import Stage


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResolvePolicyInput(_Message):
    version: str | None = None
    on: date | None = Field(default=None, description="pick the version in force on this day (the submission date)")


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
    exchange_id: str
    partnership_id: str
    hold_id: int
    amount_cents: int = Field(gt=0)
    idempotency_key: str


class PostPaymentResult(_Message):
    payment_order_id: str
    posted_cents: int
    released_cents: int


class ConfirmedPayment(_Message):
    """Finance's confirmation as the workflow accepted it: written to `payment_orders` when the exchange is PAID."""

    payment_order_id: str
    amount_cents: int = Field(gt=0)
    payment_reference: str
    confirmed_by: str
    confirmed_at: datetime


class ProjectTransitionInput(_Message):
    """One transition for the read model and the append-only audit trail."""

    application: ApplicationInput
    stage: Stage
    at: datetime
    actor_id: str
    reason: str = ""
    event: str = Field(description="what happened, e.g. stage_entered, review_submitted, alert")
    sequence: int = Field(ge=0, description="per exchange; makes the projection idempotent under retries")
    grant_cents: int | None = None
    held_cents: int = 0
    paid_cents: int = 0
    next_deadline: datetime | None = None
    policy_version: str | None = None
    details: dict[str, object] = Field(default_factory=dict)
    payment_confirmation: ConfirmedPayment | None = Field(
        default=None, description="set on the transition to PAID: recorded in payment_orders in the same transaction"
    )


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
