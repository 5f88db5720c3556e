"""The review stage's state as the `status` query shows it (kept apart so schemas.exchange can use it)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AssignmentStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"
    RECUSED = "recused"
    REASSIGNED = "reassigned"
    CLOSED = "closed"  # the review stage ended before this reviewer answered


class ReviewerState(_Message):
    reviewer_id: str
    organisation_id: str
    status: AssignmentStatus


class ReviewState(_Message):
    """The review stage as the `status` query shows it."""

    due_at: datetime | None = None
    assignments: tuple[ReviewerState, ...] = ()
    submitted_by: tuple[str, ...] = ()
    officers: tuple[str, ...] = ()
    changes_requested: str | None = None
    escalated: bool = False
    reassignment_rounds: int = 0
    rejected_at: datetime | None = None
