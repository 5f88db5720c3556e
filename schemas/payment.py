"""PAYMENT: the one unit of work that prices on the actual days, posts the hold, pays out and orders the payment."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectedEvent, ProjectionBatch
from schemas.exchange import ApplicationInput
from schemas.funding import PricingResult
from schemas.policy import Policy
from schemas.stages import Stage


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
