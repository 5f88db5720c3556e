"""REVIEW: reviewers decide to a quorum; changes, deadlines, reassignment, override and appeal.

The first reviewers are booked at admission (submission.py). A round waits for the board's decision
(board.py: a quorum of reviews, a veto rejects, else the mean score decides); a reminder goes out before
the deadline, an escalation at it, and reviewers still silent after the grace period are replaced, at
most `max_reassignment_rounds` times before the application lapses. A reviewer or officer may send the
application back for changes (every review given so far then no longer counts); the amended
application is screened again. An officer may decide instead (`override`, never over their own earlier
act) or extend the deadline. A rejection stays open to an officer's `reopen` for the appeal window,
heard by reviewers who have not seen it.

Messages (validated here, answered as soon as they are recorded in state; their side effects are written
with the stage's next unit of work): submit_review, declare_conflict, request_changes, amend_application,
reassign, override, extend_review_deadline, reopen.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.review import ReviewActivities
    from schemas.errors import Refusal, refused
    from schemas.events import DeadlineKey, EventName
    from schemas.exchange import SubmitReviewInput
    from schemas.review import (
        AmendApplicationInput,
        Assignment,
        AssignmentStatus,
        AssignReviewersInput,
        DeclareConflictInput,
        ExtendReviewDeadlineInput,
        OverrideInput,
        ReassignInput,
        ReopenInput,
        RequestChangesInput,
        ReviewState,
    )
    from schemas.review import ReviewDecision as ReviewDecisionKind
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.board import ReviewBoard, ReviewDecision
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange
    from workflows.exchange.submission import screen_again

_OFFICER_FIELDS = (
    "submitted_by",
    "submitted_at",
    "policy_version",
    "host_agency_approved",
    "host_agency_approval_reference",
)


class ReviewStage:
    """The review stage's state (17 fields once lived in the workflow class) and its messages."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.board_or_none: ReviewBoard | None = None
        self.officers: tuple[str, ...] = ()
        self.not_reviewers: set[str] = {ex.app.submitted_by}  # submitter and amenders (conflict)
        self.reviewed_by: set[str] = set()  # anyone who ever reviewed this application (four-eyes)
        self.changes_requested_by: set[str] = set()  # anyone who sent it back for changes (four-eyes)
        self.due: datetime | None = None
        self.grace_at: datetime | None = None
        self.reminded_for: datetime | None = None
        self.escalated = False
        self.reassignment_rounds = 0
        self.dirty = False  # a message changed the board: the round looks again
        self.vacancies_to_fill = False
        self.changes: RequestChangesInput | None = None
        self.amendment: AmendApplicationInput | None = None
        self.override_request: OverrideInput | None = None
        self.rejected_at: datetime | None = None
        self.reopen_request: ReopenInput | None = None

    @property
    def board(self) -> ReviewBoard:
        assert self.board_or_none is not None, "the review board exists once REVIEW is entered"
        return self.board_or_none

    # --- the stage ---------------------------------------------------------------------------------------

    async def run(
        self, due: datetime, assignment: tuple[Assignment, ...], shortfall: int, officers: tuple[str, ...]
    ) -> None:
        """From the admission's first assignment to approval; a rejection waits out its appeal window."""
        self.board_or_none = ReviewBoard(self.ex.policy.review)
        self._set_due(due)
        self._new_round()
        self._booked(assignment, shortfall, officers, recorded=True)
        if shortfall:
            await self._escalate_shortfall(shortfall, len(assignment) + shortfall, officers)
        while True:
            decision = await self._round()
            self.ex.record(
                EventName.REVIEW_DECIDED, decision.actor_id, decision.reason, {"approved": decision.approved}
            )
            self._close_open_assignments()
            if decision.approved:
                return
            await self._await_appeal(decision)
            # A reopened application is heard by reviewers who have not seen it before (fresh eyes).
            self.board_or_none = ReviewBoard(self.ex.policy.review, ever_assigned=set(self.board.ever_assigned))
            actor = self.reopen_request.actor_id if self.reopen_request else SYSTEM_ACTOR
            self.ex.enter(Stage.REVIEW, actor, "reopened")
            self.reopen_request = None
            self._set_due(await self.ex.working_day_deadline(self.ex.policy.deadlines.review_working_days))
            self._new_round()
            await self._fill_vacancies()

    def _new_round(self) -> None:
        self.escalated, self.reminded_for, self.reassignment_rounds = False, None, 0

    async def _round(self) -> ReviewDecision:
        while True:
            self.dirty = False
            if self.override_request is not None:
                override, self.override_request = self.override_request, None
                approved = override.decision is ReviewDecisionKind.APPROVE
                return ReviewDecision(approved, f"officer override: {override.justification}", override.actor_id)
            if self.changes is not None:
                await self._await_amendment()
                continue
            if self.vacancies_to_fill:
                await self._fill_vacancies()
            decision = self.board.decision()
            if decision is not None:
                return decision
            timer_at, timer = self._next_timer()
            if not await self.ex.wait_until(lambda: self.dirty, timer_at):
                await self._on_timer(timer)

    def _set_due(self, due: datetime) -> None:
        self.due = due
        self.ex.deadlines[DeadlineKey.REVIEW] = due
        self.ex.deadlines.pop(DeadlineKey.REVIEW_GRACE, None)

    def _due_text(self) -> str:
        return self.due.isoformat() if self.due else "?"

    def _next_timer(self) -> tuple[datetime, str]:
        assert self.due is not None
        if self.reminded_for != self.due:
            return self.due - timedelta(days=self.ex.policy.review.reminder_days_before_due), "reminder"
        if not self.escalated:
            return self.due, "due"
        assert self.grace_at is not None
        return self.grace_at, "grace"

    async def _on_timer(self, timer: str) -> None:
        silent = self.board.silent()
        if timer == "reminder":
            self.reminded_for = self.due
            self.ex.record(EventName.REVIEW_REMINDER, SYSTEM_ACTOR, f"due {self._due_text()}", {"reviewers": silent})
        elif timer == "due":
            self.escalated = True
            self.grace_at = await self.ex.working_day_deadline(self.ex.policy.review.reassign_grace_working_days)
            self.ex.deadlines[DeadlineKey.REVIEW_GRACE] = self.grace_at
            self.ex.alert(
                EventName.REVIEW_ESCALATED,
                f"no quorum by {self._due_text()}; escalated to officers {list(self.officers)}; silent: {silent}",
            )
        else:
            self.reassignment_rounds += 1
            if self.reassignment_rounds > self.ex.policy.review.max_reassignment_rounds:
                raise Ended(Stage.LAPSED, f"no review quorum after {self.reassignment_rounds - 1} reassignments")
            for reviewer_id in silent:
                self._unassign(reviewer_id, AssignmentStatus.REASSIGNED, "silent past the grace period")
            self._set_due(await self.ex.working_day_deadline(self.ex.policy.deadlines.review_working_days))
            self.escalated, self.reminded_for = False, None
            await self._fill_vacancies()
            self._move_open_deadlines()

    async def _fill_vacancies(self) -> None:
        self.vacancies_to_fill = False
        wanted = self.board.vacancies()
        if wanted == 0:
            return
        assert self.due is not None
        app = self.ex.app
        async with self.ex.write_lock:
            result = await workflow.execute_activity_method(
                ReviewActivities.assign_reviewers,
                AssignReviewersInput(
                    application_id=app.application_id,
                    partnership_id=app.visitor_partnership_id,
                    visitor_organisation_id=app.visitor.organisation_id,
                    host_organisation_id=app.host.organisation_id,
                    excluded_reviewer_ids=frozenset(self.board.ever_assigned | self.not_reviewers),
                    count=wanted,
                    due_at=self.due,
                    on=workflow.now().date(),
                    projection=self.ex.take_batch(),
                ),
                **options.DATABASE,
            )
        self._booked(result.assigned, result.shortfall, result.officers, recorded=False)
        if result.shortfall:
            await self._escalate_shortfall(result.shortfall, wanted, result.officers)

    def _booked(
        self, assigned: tuple[Assignment, ...], shortfall: int, officers: tuple[str, ...], *, recorded: bool
    ) -> None:
        self.board.assign(assigned)
        self.officers = officers
        if not recorded:  # the admission records its own assignment in its transaction
            self.ex.record(
                EventName.REVIEWERS_ASSIGNED,
                SYSTEM_ACTOR,
                ", ".join(a.reviewer_id for a in assigned) or "nobody",
                {"assigned": [a.model_dump() for a in assigned], "shortfall": shortfall},
            )

    async def _escalate_shortfall(self, shortfall: int, wanted: int, officers: tuple[str, ...]) -> None:
        self.escalated = True
        self.grace_at = await self.ex.working_day_deadline(self.ex.policy.review.reassign_grace_working_days)
        self.ex.alert(
            EventName.REVIEW_ESCALATED,
            f"{shortfall} of {wanted} reviewer(s) could not be assigned (conflicts, availability); "
            f"officers {list(officers)} must act",
        )

    def _unassign(self, reviewer_id: str, status: AssignmentStatus, reason: str) -> None:
        self.board.remove(reviewer_id, status)
        self.vacancies_to_fill = True
        self.ex.change_assignment(reviewer_id, status)
        name = EventName.REVIEWER_RECUSED if status is AssignmentStatus.RECUSED else EventName.REVIEWER_REASSIGNED
        self.ex.record(name, reviewer_id, reason)

    def _move_open_deadlines(self) -> None:
        """The review deadline moved: inboxes order by it, so every open assignment follows."""
        for reviewer_id in self.board.silent():
            self.ex.change_assignment(reviewer_id, AssignmentStatus.OPEN, self.due)

    def _close_open_assignments(self) -> None:
        """The review stage ended: nobody should still find this application in their inbox."""
        if self.board_or_none is None:
            return
        for reviewer_id in self.board_or_none.silent():
            self.board_or_none.statuses[reviewer_id] = AssignmentStatus.CLOSED
            self.ex.change_assignment(reviewer_id, AssignmentStatus.CLOSED)

    def close(self) -> None:
        """The exchange ends: close what is still open."""
        self._close_open_assignments()

    async def _await_amendment(self) -> None:
        changes = self.changes
        assert changes is not None
        due = workflow.now() + timedelta(days=self.ex.policy.review.amendment_days)
        self.ex.deadlines[DeadlineKey.AMENDMENT] = due
        if not await self.ex.wait_until(lambda: self.amendment is not None, due):
            raise Ended(Stage.LAPSED, f"no answer to the request for changes by {due.isoformat()}")
        amendment = self.amendment
        assert amendment is not None
        self.ex.app, self.changes, self.amendment = amendment.application, None, None
        self.ex.deadlines.pop(DeadlineKey.AMENDMENT, None)
        self.not_reviewers.add(amendment.actor_id)
        if self.board.is_assigned(amendment.actor_id):
            self._unassign(amendment.actor_id, AssignmentStatus.REASSIGNED, "amended the application")
        await screen_again(self.ex, amendment.actor_id)
        self._set_due(await self.ex.working_day_deadline(self.ex.policy.deadlines.review_working_days))
        self.escalated, self.reminded_for = False, None
        self._move_open_deadlines()

    async def _await_appeal(self, decision: ReviewDecision) -> None:
        """REJECTED, but an officer may reopen within the appeal window; then it is final."""
        self.rejected_at = workflow.now()
        self.ex.enter(Stage.REJECTED, decision.actor_id, decision.reason)
        window_ends = workflow.now() + timedelta(days=self.ex.policy.review.appeal_days)
        self.ex.deadlines = {DeadlineKey.APPEAL: window_ends}
        if not await self.ex.wait_until(lambda: self.reopen_request is not None, window_ends):
            raise Ended(Stage.REJECTED, decision.reason, decision.actor_id, entered=True)
        self.ex.deadlines.pop(DeadlineKey.APPEAL, None)
        self.rejected_at = None

    def state(self) -> ReviewState | None:
        if self.board_or_none is None:
            return None
        return ReviewState(
            due_at=self.due,
            assignments=self.board_or_none.states(),
            submitted_by=tuple(sorted(self.board_or_none.reviews)),
            officers=self.officers,
            changes_requested=self.changes.changes if self.changes else None,
            escalated=self.escalated,
            reassignment_rounds=self.reassignment_rounds,
            rejected_at=self.rejected_at,
        )

    # --- messages: bodies (answered once recorded in state) ----------------------------------------------

    def submit_review(self, decision: SubmitReviewInput) -> None:
        self.board.submit(decision)
        self.reviewed_by.add(decision.actor_id)
        self.dirty = True
        self.ex.record(
            EventName.REVIEW_SUBMITTED,
            decision.actor_id,
            decision.comment,
            {"recommendation": decision.recommendation.value, "scores": decision.scores},
        )
        self.ex.change_assignment(decision.actor_id, AssignmentStatus.SUBMITTED)

    def declare_conflict(self, request: DeclareConflictInput) -> None:
        self._unassign(request.actor_id, AssignmentStatus.RECUSED, request.reason)
        self.dirty = True

    def request_changes(self, request: RequestChangesInput) -> None:
        self.changes = request
        self.changes_requested_by.add(request.actor_id)
        invalidated = self.board.invalidate_reviews()
        self.dirty = True
        self.ex.record(
            EventName.CHANGES_REQUESTED, request.actor_id, request.changes, {"invalidated_reviews": invalidated}
        )
        for reviewer_id in invalidated:
            self.ex.change_assignment(reviewer_id, AssignmentStatus.OPEN)

    def amend_application(self, amendment: AmendApplicationInput) -> None:
        self.amendment = amendment
        self.dirty = True
        self.ex.record(EventName.APPLICATION_AMENDED, amendment.actor_id, "answer to the request for changes")

    def reassign(self, request: ReassignInput) -> None:
        self._unassign(request.reviewer_id, AssignmentStatus.REASSIGNED, request.justification)
        self.dirty = True

    def override(self, request: OverrideInput) -> None:
        self.override_request = request
        self.dirty = True
        self.ex.record(
            EventName.REVIEW_OVERRIDDEN, request.actor_id, request.justification, {"decision": request.decision}
        )

    async def extend_review_deadline(self, request: ExtendReviewDeadlineInput) -> None:
        assert self.due is not None
        self._set_due(await self.ex.working_day_deadline(request.working_days, start=self.due))
        self.escalated, self.reminded_for, self.dirty = False, None, True
        self._move_open_deadlines()
        self.ex.record(
            EventName.REVIEW_DEADLINE_EXTENDED, request.actor_id, request.justification, {"due": self._due_text()}
        )

    def reopen(self, request: ReopenInput) -> None:
        self.reopen_request = request
        self.ex.record(EventName.REVIEW_REOPENED, request.actor_id, request.justification)

    # --- messages: validators (a refusal leaves no trace) ------------------------------------------------

    def validate_review(self, decision: SubmitReviewInput) -> None:
        self.ex.require_stage("submit_review", {Stage.REVIEW})
        if decision.actor_id in self.not_reviewers:
            raise refused(
                Refusal.NOT_ALLOWED, "actor_id: the person who submitted or amended the application cannot review it"
            )
        if not self._require_board("submit_review"):
            return
        self._require_no_pending_changes("submit_review")
        if decision.actor_id in self.board.reviews:
            raise refused(
                Refusal.ALREADY_RECORDED,
                f"actor_id: {decision.actor_id} has already reviewed this application (one vote each)",
            )
        if not self.board.is_assigned(decision.actor_id):
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {decision.actor_id} is not assigned to review this application"
            )
        problem = self.board.score_problem(decision)
        if problem:
            raise refused(Refusal.INVALID_INPUT, problem)

    def validate_conflict(self, request: DeclareConflictInput) -> None:
        if not self._require_in_review("declare_conflict"):
            return
        if not self.board.is_assigned(request.actor_id):
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {request.actor_id} is not assigned to review this application"
            )

    def validate_request_changes(self, request: RequestChangesInput) -> None:
        if not self._require_in_review("request_changes"):
            return
        self._require_no_pending_changes("request_changes")
        if not (self.board.is_assigned(request.actor_id) or request.actor_id in self.officers):
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {request.actor_id} is neither an assigned reviewer nor a programme officer",
            )

    def validate_amendment(self, amendment: AmendApplicationInput) -> None:
        self._require_in_review("amend_application")
        if self.changes is None or self.amendment is not None:
            raise refused(Refusal.WRONG_STAGE, "amend_application: no request for changes is waiting for an answer")
        amended, current = amendment.application, self.ex.app
        if amended.application_id != current.application_id:
            raise refused(Refusal.INVALID_INPUT, "application.application_id: an amendment keeps the application's id")
        if amended.visitor_partnership_id != current.visitor_partnership_id:
            raise refused(
                Refusal.INVALID_INPUT,
                "application.visitor_partnership_id: an amendment cannot move to another partnership",
            )
        # Who submitted, when, under which policy and with which agency approval are not the applicant's to
        # change: an amendment keeps them as they were (issue 11).
        changed = [name for name in _OFFICER_FIELDS if getattr(amended, name) != getattr(current, name)]
        if changed:
            raise refused(
                Refusal.NOT_ALLOWED, f"application.{changed[0]}: an amendment keeps {', '.join(changed)} as submitted"
            )
        if amendment.actor_id in self.board.ever_assigned or amendment.actor_id in self.officers:
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {amendment.actor_id} reviews this application and cannot amend it"
            )

    def validate_reassign(self, request: ReassignInput) -> None:
        self._require_in_review("reassign")
        self._require_officer("reassign", request.actor_id)
        if not self.board.is_assigned(request.reviewer_id):
            raise refused(
                Refusal.INVALID_INPUT, f"reviewer_id: {request.reviewer_id} is not assigned to this application"
            )

    def validate_override(self, request: OverrideInput) -> None:
        self._require_in_review("override")
        self._require_officer("override", request.actor_id)
        # Four-eyes against the officer's own earlier acts on this application.
        own_act = (
            "reviewed"
            if request.actor_id in self.reviewed_by
            else "submitted or amended"
            if request.actor_id in self.not_reviewers
            else "requested changes to"
            if request.actor_id in self.changes_requested_by
            else None
        )
        if own_act:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {request.actor_id} {own_act} this application and cannot override (four-eyes)",
            )
        if self.override_request is not None:
            raise refused(Refusal.ALREADY_RECORDED, "override: an override is already being applied")

    def validate_extension(self, request: ExtendReviewDeadlineInput) -> None:
        self._require_in_review("extend_review_deadline")
        self._require_officer("extend_review_deadline", request.actor_id)

    def validate_reopen(self, request: ReopenInput) -> None:
        self.ex.require_stage("reopen", {Stage.REJECTED})
        if self.rejected_at is None:
            raise refused(Refusal.WRONG_STAGE, "reopen: the appeal window has closed")
        self._require_officer("reopen", request.actor_id)
        if self.reopen_request is not None:
            raise refused(Refusal.ALREADY_RECORDED, "reopen: already reopened")

    def _require_in_review(self, action: str) -> bool:
        self.ex.require_stage(action, {Stage.REVIEW})
        return self._require_board(action)

    def _require_board(self, action: str) -> bool:
        """True when the board exists; False while the admission books it (the message is then accepted and
        validated again once it is booked, see ExchangeWorkflow); refused otherwise."""
        if self.board_or_none is not None:
            return True
        if self.ex.entering is Stage.REVIEW:
            return False
        raise refused(Refusal.WRONG_STAGE, f"{action}: reviewers are being assigned; try again in a moment")

    def _require_no_pending_changes(self, action: str) -> None:
        if self.changes is not None:
            raise refused(
                Refusal.WRONG_STAGE, f"{action}: changes were requested; waiting for the applicant's amendment"
            )

    def _require_officer(self, action: str, actor_id: str) -> None:
        if actor_id not in self.officers:
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {actor_id} is not a programme officer of this partnership ({action})"
            )
