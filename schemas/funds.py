"""FUNDING (waitlist): the per-partnership Funds workflow's contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

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
