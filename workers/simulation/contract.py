"""What the simulation's actor workflows and their activities exchange (workers/simulation/actors.py, people.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Look(_Model):
    """The application as the read model shows it: its stage, its open reviewers, its payment order."""

    stage: str | None = None
    open_reviewers: tuple[str, ...] = ()
    order_id: str | None = None
    order_cents: int | None = Field(default=None, ge=0)


class DecideInput(_Model):
    application_id: str
    update: str
    payload: dict[str, Any]
    update_id: str


class DecideAll(_Model):
    decisions: tuple[DecideInput, ...]


class DecideResult(_Model):
    accepted: bool
    refusal: str | None = None


class ReportInput(_Model):
    application_id: str
    actor_id: str


class PayInput(_Model):
    application_id: str
    order_id: str
    amount_cents: int = Field(gt=0)
