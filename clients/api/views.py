"""Need to know (issue 11, item 3): what the parties' side sees of an exchange.

Applicants and the services of parties read their exchanges in the *party view*: everything about their
application, its money and its stages, but neither the reviewers' names nor their organisations. The
status keeps the review's counts (how many assigned, how many answered) and the request for changes; the
explanation keeps each review's recommendation, scores and comment under a pseudonym ("reviewer 1"), so a
party can read why without learning who. Transitions and reasons that name a reviewer ("vetoed by ...")
have the name replaced. The `alerts` are the back office's (they name officers and silent reviewers) and
are left out.

The programme's side (officers, programme services, ops) and the reviewers themselves see the full status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from clients.api.models import Explanation
from schemas.exchange import ExchangeStatus, Party, RuleFailure, Transition
from schemas.review_state import AssignmentStatus, ReviewState
from schemas.stages import Stage

A_REVIEWER = "a reviewer"
A_REVIEWERS_ORGANISATION = "a reviewer's organisation"
_STANDING = frozenset({AssignmentStatus.OPEN, AssignmentStatus.SUBMITTED})
_ID_CHARS = r"[A-Za-z0-9._@-]"


class PartyReviewView(BaseModel):
    """The review stage as a party sees it: how many reviewers and answers, never who."""

    model_config = ConfigDict(frozen=True)

    due_at: datetime | None = None
    reviewers_assigned: int = Field(description="reviewers assigned now (open or answered)")
    reviews_submitted: int = Field(description="reviews answered in this round")
    changes_requested: str | None = None
    escalated: bool = False
    reassignment_rounds: int = 0
    rejected_at: datetime | None = None


class PartyExchangeView(BaseModel):
    """The `status` query as an applicant or a party's service reads it (the party view): reviewers are
    counted, never named, and the back office's alerts are left out (docs/security.md, "Need to know")."""

    model_config = ConfigDict(frozen=True)

    application_id: str
    stage: Stage
    partnership_id: str
    policy_version: str | None = None
    grant_cents: int | None = None
    held_cents: int = 0
    paid_cents: int = 0
    hold_transfer_id: int | None = None
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    signatures: dict[Party, str] = Field(default_factory=dict)
    parties: dict[Party, str] = Field(default_factory=dict)
    match_confirmed_by: dict[str, str] = Field(default_factory=dict)
    start_date: date | None = None
    end_date: date | None = None
    stay_started: bool = False
    attendance_confirmed_by: str | None = None
    actual_end_date: date | None = None
    report_submitted: bool = False
    screening_failures: tuple[RuleFailure, ...] = ()
    payment_order_id: str | None = None
    payment_reference: str | None = None
    review: PartyReviewView | None = None
    history: tuple[Transition, ...] = ()
    view: str = Field(default="party", description="`party`: reviewers counted, not named")


# The status fields the party view leaves out or reshapes; a test holds the two models to this.
LEFT_OUT = frozenset({"alerts"})
RESHAPED = frozenset({"review"})


class Redactor:
    """Replaces reviewers' ids (with a pseudonym or "a reviewer") and their organisations' ids in text."""

    def __init__(self, names: Mapping[str, str], organisations: Iterable[str]) -> None:
        replacements = dict(names)
        for organisation in organisations:
            replacements.setdefault(organisation, A_REVIEWERS_ORGANISATION)
        self._replacements = replacements
        # Longest first, whole ids only: "rev-a" must not eat the start of "rev-ab".
        ids = sorted(replacements, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(f"(?<!{_ID_CHARS}){re.escape(i)}(?!{_ID_CHARS})" for i in ids)) if ids else None
        )

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(lambda match: self._replacements[match.group(0)], value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(key)): self.json(item) for key, item in value.items()}
        return value


async def reviewers_of(pool: asyncpg.Pool, application_id: str) -> dict[str, str]:
    """Every reviewer ever assigned to the exchange (any round, any status) -> their organisation."""
    rows = await pool.fetch(
        """SELECT a.reviewer_id, r.organisation_id
             FROM review_assignments a JOIN reviewers r USING (reviewer_id)
            WHERE a.application_id = $1""",
        application_id,
    )
    return {row["reviewer_id"]: row["organisation_id"] for row in rows}


def _from_status(review: ReviewState | None) -> dict[str, str]:
    if review is None:
        return {}
    known = {a.reviewer_id: a.organisation_id for a in review.assignments}
    return {**dict.fromkeys(review.submitted_by, ""), **known}


def party_status(status: ExchangeStatus, reviewers: Mapping[str, str]) -> PartyExchangeView:
    """The party view of a status; `reviewers` are the exchange's reviewers from the read model."""
    everyone = {**reviewers, **_from_status(status.review)}
    redactor = Redactor(dict.fromkeys(everyone, A_REVIEWER), [o for o in everyone.values() if o])
    review = status.review
    data = status.model_dump(exclude=set(LEFT_OUT | RESHAPED))
    data["history"] = tuple(
        t.model_copy(update={"actor_id": redactor.text(t.actor_id), "reason": redactor.text(t.reason)})
        for t in status.history
    )
    if review is not None:
        data["review"] = PartyReviewView(
            due_at=review.due_at,
            reviewers_assigned=sum(1 for a in review.assignments if a.status in _STANDING),
            reviews_submitted=sum(1 for a in review.assignments if a.status is AssignmentStatus.SUBMITTED),
            changes_requested=redactor.text(review.changes_requested) if review.changes_requested else None,
            escalated=review.escalated,
            reassignment_rounds=review.reassignment_rounds,
            rejected_at=review.rejected_at,
        )
    return PartyExchangeView.model_validate(data)


def party_explanation(explanation: Explanation, reviewers: Mapping[str, str]) -> Explanation:
    """The party view of an explanation: each reviewer becomes "reviewer N" in the order they first acted
    (scores, recommendations and comments stay); their organisations are not named."""
    order = [d.actor_id for d in explanation.decisions if d.actor_id in reviewers]
    order += sorted(reviewers)
    names: dict[str, str] = {}
    for reviewer_id in order:
        names.setdefault(reviewer_id, f"reviewer {len(names) + 1}")
    redactor = Redactor(names, [o for o in reviewers.values() if o])
    decisions = [
        d.model_copy(
            update={
                "actor_id": redactor.text(d.actor_id),
                "reason": redactor.text(d.reason),
                "details": redactor.json(d.details),
            }
        )
        for d in explanation.decisions
    ]
    return explanation.model_copy(update={"decisions": decisions})
