"""FUNDING: the price (R8), the hold on the partnership's budget, and the per-partnership waitlist.

The activities' inputs and results (`fund_exchange`, `price_exchange`, `hold_funds`, `rehold_funds`,
`void_hold`) and the contract of the `Funds` workflow (`funds:<partnership id>`, docs/contract.md "The
waitlist"): who waits, for how much, and the messages that join, leave and announce released money.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectedEvent, ProjectionBatch
from schemas.exchange import ApplicationInput
from schemas.policy import Policy

FUNDS_WORKFLOW_TYPE = "Funds"


def funds_workflow_id(partnership_id: str) -> str:
    """`funds:<partnership id>`: one waitlist per partnership."""
    return f"funds:{partnership_id}"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WaitingExchange(_Message):
    application_id: str
    amount_cents: int = Field(gt=0)
    hold_key: str = Field(description="the exchange's own ledger key: a hold placed for it is booked once")
    joined_at: datetime


class FundsState(_Message):
    """Start input and continue-as-new state of a partnership's waitlist."""

    partnership_id: str
    queue: tuple[WaitingExchange, ...] = ()
    release_pending: bool = False


class JoinWaitlistInput(_Message):
    partnership_id: str
    waiting: WaitingExchange


class LeaveWaitlistInput(_Message):
    partnership_id: str
    application_id: str


class LeaveWaitlistResult(_Message):
    hold_id: int | None = Field(default=None, description="a hold the waitlist placed for the exchange, if any")


class FundsReleasedInput(_Message):
    partnership_id: str
    reason: str


class FundsHeldInput(_Message):
    """Signal to an exchange: the waitlist placed its hold."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"hold_id": 1234, "amount_cents": 95000}]})

    hold_id: int
    amount_cents: int


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
    application_id: str
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


class ReholdFundsInput(_Message):
    """Replace an exchange's hold by one of a new amount, atomically (an amendment of dates)."""

    hold_id: int
    amount_cents: int = Field(gt=0)
    idempotency_key: str


class ReholdFundsResult(_Message):
    held: bool
    transfer_id: int | None = None
    available_cents: int | None = Field(default=None, description="what the budget had when the rehold was refused")


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
