"""SUBMITTED to REVIEW in one unit of work: an application is admitted, screened and given its reviewers.

One activity and one database transaction do what used to take eight round trips (docs/performance.md):
1. the policy in force on the submission date (or the one asked for) is resolved: an unknown version is
   refused (InvalidInput) before anything is written;
2. the application id is claimed for this run (`exchange_runs`, migration 0007): a second run under a
   closed exchange's id finds the first run's claim and is told so, having written nothing;
3. rules R1-R6 and the lead time are applied (pure code, rules/screening.py) and R7 is read early
   (the visitor organisation's one visit: activities/screening.py);
4. an eligible application enters REVIEW and its reviewers are booked, with the review deadline counted
   in working days;
5. the events of all that (SUBMITTED, SCREENING, the screening decision, REVIEW, the assignment) are
   written with the read model's row, and returned so the workflow mirrors them.
A retry after a lost completion finds its own claim and its own bookings and writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.projection import transact, write_events
from activities.screening import check as check_visit
from ledger.review import assign
from ledger.store import DbConnection
from rules.calendar import add_working_days
from rules.screening import screen, visit_failures
from schemas.errors import ErrorType
from schemas.events import EventName, ProjectedEvent
from schemas.exchange import ApplicationInput
from schemas.policy import Policy, UnknownPolicyVersion, load_policy, policy_in_force
from schemas.review import AssignReviewersInput
from schemas.screening import ScreeningResult
from schemas.stages import Stage
from schemas.submission import AdmitApplicationInput, AdmitApplicationResult, ClaimExchangeRunResult

SYSTEM_ACTOR = "system"


def resolve(version: str | None, submitted_on: datetime, extra: Mapping[str, Policy] | None = None) -> Policy:
    """The version asked for, else the one in force on the submission date; unknown versions are refused.
    `extra` holds versions this worker knows beyond the shipped files (the programme simulation's candidate
    policy, docs/adr/0027-programme-simulation.md); production workers have none."""
    if version is not None and extra and version in extra:
        return extra[version]
    try:
        return load_policy(version) if version else policy_in_force(submitted_on.date())
    except UnknownPolicyVersion as error:
        raise ApplicationError(str(error), type=ErrorType.INVALID_INPUT, non_retryable=True) from error


async def claim_run(conn: DbConnection, request: AdmitApplicationInput) -> ClaimExchangeRunResult:
    await conn.execute(
        """INSERT INTO exchange_runs (application_id, workflow_id, run_id, started_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT (application_id) DO NOTHING""",
        request.application.application_id,
        request.workflow_id,
        request.run_id,
        request.started_at,
    )
    owner = await conn.fetchrow(
        "SELECT run_id, claimed_at FROM exchange_runs WHERE application_id = $1", request.application.application_id
    )
    assert owner is not None, "the row was inserted or already present in this transaction"
    return ClaimExchangeRunResult(
        claimed=owner["run_id"] == request.run_id, owner_run_id=owner["run_id"], claimed_at=owner["claimed_at"]
    )


class _Events:
    """Events of the admission, numbered from 1 and stamped with the workflow's time."""

    def __init__(self, app: ApplicationInput, policy: Policy, at: datetime) -> None:
        self.app, self.policy, self.at = app, policy, at
        self.stage = Stage.SUBMITTED
        self.next_deadline: datetime | None = None
        self.written: list[ProjectedEvent] = []

    def add(self, name: EventName, actor_id: str, reason: str = "", details: dict[str, object] | None = None) -> None:
        self.written.append(
            ProjectedEvent(
                sequence=len(self.written) + 1,
                event=name,
                stage=self.stage,
                at=self.at,
                actor_id=actor_id,
                reason=reason,
                details=details or {},
                next_deadline=self.next_deadline,
                policy_version=self.policy.version,
            )
        )

    def enter(self, stage: Stage, actor_id: str, reason: str = "", details: dict[str, object] | None = None) -> None:
        self.stage = stage
        self.add(EventName.STAGE_ENTERED, actor_id, reason, details)


class SubmissionActivities:
    def __init__(
        self, pool: asyncpg.Pool, notify_email: str | None = None, extra_policies: Mapping[str, Policy] | None = None
    ) -> None:
        self._pool = pool
        self._extra_policies = dict(extra_policies or {})
        self._notify_email = notify_email

    @activity.defn(name="admit_application")
    async def admit_application(self, request: AdmitApplicationInput) -> AdmitApplicationResult:
        app = request.application
        submitted_at = app.submitted_at or request.started_at
        policy = resolve(app.policy_version, submitted_at, self._extra_policies)  # refused before anything is written

        async def admit(conn: DbConnection, _: object) -> AdmitApplicationResult:
            claim = await claim_run(conn, request)
            if not claim.claimed:
                return AdmitApplicationResult(
                    claimed=False, owner_run_id=claim.owner_run_id, claimed_at=claim.claimed_at
                )
            events = _Events(app, policy, request.now)
            officer_fields = app.officer_fields()
            events.enter(
                Stage.SUBMITTED,
                app.submitted_by,
                "application received",
                {"officer_fields": officer_fields} if officer_fields else None,
            )
            events.enter(Stage.SCREENING, SYSTEM_ACTOR)
            screening = screen(app, policy, submitted_at.date())
            visit = await check_visit(conn, app.visitor.organisation_id, app.application_id)
            failures = (*screening.failures, *visit_failures(app.visitor, visit))
            screening = screening.model_copy(update={"failures": failures, "eligible": not failures})
            events.add(
                EventName.SCREENING_DECIDED,
                SYSTEM_ACTOR,
                "eligible" if screening.eligible else "ineligible",
                _screening_details(screening, visit.model_dump(mode="json")),
            )
            result = AdmitApplicationResult(
                claimed=True, owner_run_id=claim.owner_run_id, claimed_at=claim.claimed_at, policy=policy,
                screening=screening, visit=visit,
            )  # fmt: skip
            if screening.eligible:
                result = await self._assign(conn, request, policy, events, result)
            await write_events(conn, app, tuple(events.written), self._notify_email)
            return result.model_copy(update={"events": tuple(events.written)})

        return await transact(self._pool, None, admit, self._notify_email)

    @staticmethod
    async def _assign(
        conn: DbConnection,
        request: AdmitApplicationInput,
        policy: Policy,
        events: _Events,
        result: AdmitApplicationResult,
    ) -> AdmitApplicationResult:
        """REVIEW: the first reviewers of the visitor's partnership, due in the policy's working days."""
        app = request.application
        due_day = add_working_days(request.now.date(), policy.deadlines.review_working_days, app.visitor.country)
        review_due = datetime.combine(due_day, request.now.timetz())
        events.next_deadline = review_due
        events.enter(Stage.REVIEW, SYSTEM_ACTOR)
        assignment = await assign(
            conn,
            AssignReviewersInput(
                application_id=app.application_id,
                partnership_id=app.visitor_partnership_id,
                visitor_organisation_id=app.visitor.organisation_id,
                host_organisation_id=app.host.organisation_id,
                excluded_reviewer_ids=request.excluded_reviewer_ids,
                count=policy.review.reviewers_per_application,
                due_at=review_due,
                on=request.now.date(),
            ),
        )
        events.add(
            EventName.REVIEWERS_ASSIGNED,
            SYSTEM_ACTOR,
            ", ".join(a.reviewer_id for a in assignment.assigned) or "nobody",
            {"assigned": [a.model_dump() for a in assignment.assigned], "shortfall": assignment.shortfall},
        )
        return result.model_copy(update={"review_due": review_due, "assignment": assignment})


def _screening_details(screening: ScreeningResult, r7: dict[str, object]) -> dict[str, object]:
    return {
        "failures": [f.model_dump() for f in screening.failures],
        "input_digest": screening.input_digest,
        "working_days": screening.working_days,
        "distance_km": screening.distance_km,
        "r7": r7,
    }
