"""REPORTING: the evidence check the Exchange workflow asks for when a report arrives (`verify_evidence`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectionBatch
from schemas.exchange import EvidenceItem
from schemas.ids import ApplicationId

# A report has a handful of documents; this bound is far above that and only stops a runaway request.
MAX_EVIDENCE_ITEMS = 100


class VerifyEvidenceInput(BaseModel):
    """Input of `verify_evidence`: the evidence a report points at, for one application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: ApplicationId
    items: Annotated[tuple[EvidenceItem, ...], Field(min_length=1, max_length=MAX_EVIDENCE_ITEMS)]
    projection: ProjectionBatch | None = Field(
        default=None, description="what the workflow recorded since its last write, written in the same transaction"
    )
    validation_working_days: int | None = Field(
        default=None, ge=0, description="when set, the VOP's validation deadline is counted from `now`"
    )
    country: str | None = Field(default=None, description="whose calendar counts the working days")
    now: datetime | None = None


class EvidenceMismatch(BaseModel):
    """An item whose file was uploaded for the application but recorded with another size or kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: EvidenceItem
    recorded_size_bytes: int
    recorded_kind: str
    message: str = Field(description="a sentence naming what differs, to send back with the report")


class VerifyEvidenceResult(BaseModel):
    """What `verify_evidence` found wrong; both tuples empty means every item checks out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    missing: tuple[EvidenceItem, ...] = Field(
        default=(), description="never uploaded for this application (or uploaded for another one)"
    )
    mismatched: tuple[EvidenceMismatch, ...] = ()
    validation_due: datetime | None = Field(default=None, description="the VOP's deadline for this report")

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched
