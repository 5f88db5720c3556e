"""REVIEW: reviewers, assignments, and the review stage's messages (issue 5)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectionBatch
from schemas.exchange import APPLICATION_EXAMPLE, ApplicationInput, examples
from schemas.ids import ActorId, ApplicationId, OrganisationId, PartnershipId
from schemas.organisations import CountryCode
from schemas.review_state import AssignmentStatus, ReviewerState, ReviewState
from schemas.text import Justification, Name

__all__ = ["AssignmentStatus", "ReviewState", "ReviewerState"]  # re-exported: part of this contract


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ReviewerRole(StrEnum):
    REVIEWER = "reviewer"
    PROGRAMME_OFFICER = "programme_officer"


class Reviewer(_Message):
    """A person who may review (and, as programme officer, escalate, reassign and override)."""

    reviewer_id: ActorId
    name: Name
    organisation_id: OrganisationId
    country: CountryCode
    partnership_id: PartnershipId
    roles: frozenset[ReviewerRole] = Field(min_length=1)
    conflicts: frozenset[OrganisationId] = Field(default_factory=frozenset, description="declared conflicts")
    unavailable_until: date | None = Field(
        default=None, description="last day away (holidays): assigned again from the day after"
    )


class AssignReviewersInput(_Message):
    """Pick `count` reviewers of the visitor's partnership for one application."""

    application_id: ApplicationId
    partnership_id: PartnershipId
    visitor_organisation_id: OrganisationId
    host_organisation_id: OrganisationId
    excluded_reviewer_ids: frozenset[str] = Field(
        default_factory=frozenset, description="already assigned or recused, the submitter, the amender"
    )
    count: int = Field(ge=1, le=20)
    due_at: datetime
    on: date = Field(description="the day of the assignment (availability is checked against it)")
    projection: ProjectionBatch | None = Field(
        default=None, description="what the workflow recorded since its last write, written in the same transaction"
    )


class Assignment(_Message):
    reviewer_id: str
    organisation_id: str


class AssignReviewersResult(_Message):
    assigned: tuple[Assignment, ...]
    shortfall: int = Field(ge=0, description="how many more were needed than could be found")
    officers: tuple[str, ...] = Field(description="programme officers of the partnership, for escalation")


class UpdateAssignmentInput(_Message):
    application_id: ApplicationId
    reviewer_id: str
    status: AssignmentStatus
    due_at: datetime | None = None


class DeclareConflictInput(_Message):
    """An assigned reviewer recuses themself; a replacement is assigned."""

    model_config = examples({"actor_id": "rev-anna", "reason": "I advised the host organisation last year"})

    actor_id: ActorId
    reason: Justification


class RequestChangesInput(_Message):
    """An assigned reviewer (or an officer) sends the application back; earlier reviews become invalid."""

    model_config = examples({"actor_id": "rev-anna", "changes": "Please add a day-by-day agenda for the stay."})

    actor_id: ActorId
    changes: Justification


class AmendApplicationInput(_Message):
    """The applicant's answer to a request for changes: the whole application, same id; screened again."""

    model_config = examples({"actor_id": "crm-photonics", "application": APPLICATION_EXAMPLE})

    actor_id: ActorId
    application: ApplicationInput


class ReassignInput(_Message):
    """An officer replaces an assigned reviewer."""

    model_config = examples(
        {"actor_id": "officer-olga", "reviewer_id": "rev-anna", "justification": "on leave until the deadline"}
    )

    actor_id: ActorId
    reviewer_id: ActorId
    justification: Justification


class OverrideInput(_Message):
    """An officer decides the review stage; never over their own review (four-eyes)."""

    model_config = examples(
        {"actor_id": "officer-olga", "decision": "approve", "justification": "both reviewers were unavailable"}
    )

    actor_id: ActorId
    decision: ReviewDecision
    justification: Justification


class ExtendReviewDeadlineInput(_Message):
    model_config = examples(
        {"actor_id": "officer-olga", "working_days": 5, "justification": "the panel is away this week"}
    )

    actor_id: ActorId
    working_days: int = Field(ge=1, le=30)
    justification: Justification


class ReopenInput(_Message):
    """An officer reopens a rejected application within the policy's appeal window."""

    model_config = examples({"actor_id": "officer-olga", "justification": "the applicant's appeal was upheld"})

    actor_id: ActorId
    justification: Justification
