"""SUBMITTED: what a run of the Exchange workflow checks before it touches anything, and its admission.

One exchange per application id, forever: a run claims its application id in Postgres before its first
projection; another run under the same id (an SDK's default id-reuse policy allows one once the first
has closed) finds the claim and ends at once with `DuplicateApplication`, touching nothing. Admission
(`admit_application`) is SUBMITTED to REVIEW in one unit of work: the claim, screening, R7's early read and
the first reviewers.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ProjectedEvent
from schemas.exchange import ApplicationInput
from schemas.ids import ApplicationId
from schemas.policy import Policy
from schemas.review import AssignReviewersResult
from schemas.screening import CheckVisitResult, ScreeningResult


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClaimExchangeRunInput(_Message):
    application_id: ApplicationId
    workflow_id: str
    run_id: str = Field(
        description="the chain's first run id: a reset run keeps it, so a reset is the same exchange, "
        "while a new start under a closed exchange's id is not"
    )
    started_at: datetime


class ClaimExchangeRunResult(_Message):
    claimed: bool = Field(description="true when this run (or its chain) owns the application id")
    owner_run_id: str
    claimed_at: datetime


class AdmitApplicationInput(_Message):
    """SUBMITTED to REVIEW in one unit of work (activities/submission.py)."""

    application: ApplicationInput
    workflow_id: str
    run_id: str = Field(
        description="the chain's first run id: a reset run keeps it, so a reset is the same exchange, "
        "while a new start under a closed exchange's id is not"
    )
    started_at: datetime
    now: datetime = Field(description="the workflow's time: the events are stamped with it")
    excluded_reviewer_ids: frozenset[str] = Field(description="who may never review it (the submitter)")


class AdmitApplicationResult(_Message):
    claimed: bool = Field(description="false: another run owns the application id; nothing was written")
    owner_run_id: str
    claimed_at: datetime
    policy: Policy | None = None
    screening: ScreeningResult | None = Field(default=None, description="R1-R7 and the lead time, every failure")
    visit: CheckVisitResult | None = None
    review_due: datetime | None = None
    assignment: AssignReviewersResult | None = None
    events: tuple[ProjectedEvent, ...] = Field(default=(), description="what it wrote, for the workflow to mirror")
