"""What an exchange's audit trail and read model are made of: event names, deadline keys, projection batches.

The Exchange workflow records events into a batch (no activity per event); the batch is written by the
next activity that touches Postgres anyway, in the same transaction as that activity's own work, or on its
own when the workflow is about to wait for people and something they must see is still unwritten
(activities/projection.py, docs/performance.md). Names are enums shared by the workflow, the projection
and the readers (`cx explain`, the API), so a renamed event cannot go unnoticed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.exchange import ApplicationInput
from schemas.review_state import AssignmentStatus
from schemas.stages import Stage


class EventName(StrEnum):
    STAGE_ENTERED = "stage_entered"
    SCREENING_DECIDED = "screening_decided"
    REVIEWERS_ASSIGNED = "reviewers_assigned"
    REVIEW_SUBMITTED = "review_submitted"
    REVIEWER_RECUSED = "reviewer_recused"
    REVIEWER_REASSIGNED = "reviewer_reassigned"
    CHANGES_REQUESTED = "changes_requested"
    APPLICATION_AMENDED = "application_amended"
    REVIEW_OVERRIDDEN = "review_overridden"
    REVIEW_DEADLINE_EXTENDED = "review_deadline_extended"
    REVIEW_REOPENED = "review_reopened"
    REVIEW_DECIDED = "review_decided"
    REVIEW_REMINDER = "review_reminder"
    REVIEW_ESCALATED = "review_escalated"
    PRICED = "priced"
    FUNDS_HELD = "funds_held"
    HOLD_VOIDED = "hold_voided"
    COMMITMENT_SIGNED = "commitment_signed"
    MATCH_CONFIRMED = "match_confirmed"
    AGREEMENT_REMINDER = "agreement_reminder"
    DATES_AMENDED = "dates_amended"
    STAY_STARTED = "stay_started"
    STAY_ENDED = "stay_ended"
    ATTENDANCE_CONFIRMED = "attendance_confirmed"
    NO_SHOW_REPORTED = "no_show_reported"
    REPORT_REMINDER = "report_reminder"
    REPORT_SUBMITTED = "report_submitted"
    REPORT_VALIDATED = "report_validated"
    REPORT_VALIDATION_LATE = "report_validation_late"
    PAYMENT_ORDERED = "payment_ordered"
    PAYMENT_SLA_MISSED = "payment_sla_missed"
    PAYMENT_UNCONFIRMED = "payment_unconfirmed"
    PAYMENT_CONFIRMATION_IGNORED = "payment_confirmation_ignored"
    PROJECTION_REJECTED = "projection_rejected"


# Events a person must hear about: each becomes an e-mail in the outbox, written with its audit row, and
# a batch holding one is written before the workflow waits (it cannot wait in the buffer).
NOTIFIED_EVENTS = frozenset(
    {
        EventName.REVIEW_REMINDER,
        EventName.REVIEW_ESCALATED,
        EventName.AGREEMENT_REMINDER,
        EventName.REPORT_REMINDER,
        EventName.REPORT_VALIDATION_LATE,
        EventName.PAYMENT_SLA_MISSED,
        EventName.PAYMENT_UNCONFIRMED,
        EventName.CHANGES_REQUESTED,
    }
)


class DeadlineKey(StrEnum):
    """Named deadlines in `status.deadlines`, each owned by the stage that waits on it."""

    REVIEW = "review"
    REVIEW_GRACE = "review_grace"
    AMENDMENT = "amendment"
    APPEAL = "appeal"
    WAITLIST = "waitlist"
    SIGNATURES = "signatures"
    STAY_STARTS = "stay_starts"
    STAY_ENDS = "stay_ends"
    REPORT = "report"
    REPORT_VALIDATION = "report_validation"
    PAYMENT_SLA = "payment_sla"

    @property
    def stage(self) -> Stage:
        return _DEADLINE_STAGES[self]


_DEADLINE_STAGES = {
    DeadlineKey.REVIEW: Stage.REVIEW,
    DeadlineKey.REVIEW_GRACE: Stage.REVIEW,
    DeadlineKey.AMENDMENT: Stage.REVIEW,
    DeadlineKey.APPEAL: Stage.REJECTED,
    DeadlineKey.WAITLIST: Stage.WAITLISTED,
    DeadlineKey.SIGNATURES: Stage.AGREEMENT,
    DeadlineKey.STAY_STARTS: Stage.TRAVEL,
    DeadlineKey.STAY_ENDS: Stage.TRAVEL,
    DeadlineKey.REPORT: Stage.REPORTING,
    DeadlineKey.REPORT_VALIDATION: Stage.REPORTING,
    DeadlineKey.PAYMENT_SLA: Stage.PAYMENT,
}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectedEvent(_Message):
    """One audit event, with the exchange's state right after it (the read model's row follows the last)."""

    sequence: int = Field(ge=1, description="per exchange; makes the projection idempotent under retries")
    event: EventName
    stage: Stage
    at: datetime
    actor_id: str
    reason: str = ""
    details: dict[str, object] = Field(default_factory=dict)
    grant_cents: int | None = None
    held_cents: int = 0
    paid_cents: int = 0
    next_deadline: datetime | None = None
    policy_version: str | None = None


class AssignmentChange(_Message):
    """A reviewer's assignment moved (submitted, recused, reassigned, closed, or a new due date)."""

    reviewer_id: str
    status: AssignmentStatus
    due_at: datetime | None = None


class ConfirmedPayment(_Message):
    """Finance's confirmation as the workflow accepted it: written to `payment_orders` when the exchange is PAID."""

    payment_order_id: str
    amount_cents: int = Field(gt=0)
    payment_reference: str
    confirmed_by: str
    confirmed_at: datetime


class ProjectionBatch(_Message):
    """What the workflow recorded since its last write: written in one transaction, idempotently."""

    application: ApplicationInput
    events: tuple[ProjectedEvent, ...] = ()
    assignments: tuple[AssignmentChange, ...] = ()
    payment_confirmation: ConfirmedPayment | None = None

    @property
    def empty(self) -> bool:
        return not self.events and not self.assignments and self.payment_confirmation is None


class WorkingDayDeadlineInput(_Message):
    """A deadline `working_days` after `start`, counted on `country`'s calendar."""

    start: datetime
    working_days: int = Field(ge=0)
    country: str
