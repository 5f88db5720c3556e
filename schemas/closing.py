"""Closing: the one unit of work that ends an exchange (void a pending hold, give the visit back, the end)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectedEvent, ProjectionBatch


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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
