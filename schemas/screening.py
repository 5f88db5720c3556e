"""SCREENING: the rules run on an application (R1-R6, R13) and R7's visit, as the activities take and answer them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.exchange import ApplicationInput, RuleFailure
from schemas.policy import Policy
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


class ClaimVisitInput(_Message):
    organisation_id: str
    application_id: str


class ClaimVisitResult(_Message):
    claimed: bool
    held_by_application_id: str | None = Field(default=None, description="the exchange that holds the visit")


class ReleaseVisitInput(_Message):
    application_id: str
    reason: str
