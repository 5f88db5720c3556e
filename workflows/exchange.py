"""The Exchange workflow: one ClusterXchange exchange from application to payment.

Stages (ARCHITECTURE.md): SUBMITTED -> SCREENING -> REVIEW -> FUNDING (-> WAITLISTED) -> AGREEMENT ->
TRAVEL -> REPORTING -> PAYMENT -> PAID, or a terminal INELIGIBLE, REJECTED, EXPIRED, LAPSED, WITHDRAWN,
CANCELLED or FORFEITED. Any hold still pending when the exchange ends is voided.

Before anything is touched (docs/adr/0011-trust-at-the-edges.md): the start input was decoded strictly
(schemas/converter.py; a bad one fails the run with InvalidInput), the workflow id must be
`exchange:<application_id>`, `submitted_at` not after the start, the policy version on file, and the
application id is claimed for this run (a second run under a closed exchange's id fails with
DuplicateApplication, having changed nothing).

Messages:
- updates (validated; a refused update leaves no trace and fails with a schemas.errors.Refusal type):
  submit_review, declare_conflict, request_changes, amend_application, reassign, override,
  extend_review_deadline, reopen, confirm_match, sign_commitment, amend_dates, confirm_attendance,
  report_no_show, submit_report, validate_report, withdraw, cancel;
- signals: confirm_payment (finance; counts only in PAYMENT for this exchange's order and amount, any
  other is recorded as ignored), offer_funds (money released in the partnership), funds_held (Funds);
- query: status.

Deadlines (policy data, counted from when each step starts): review (working days, then escalation
to an officer, then the application lapses); waitlist; signatures; travel timers to the start and
end of the stay; report (with reminders); report validation (escalation); payment SLA (alert) and a
last limit on waiting for finance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.deadlines import working_day_deadline
    from activities.evidence import EvidenceActivities, VerifyEvidenceInput
    from activities.ledger import LedgerActivities
    from activities.payments import PaymentActivities
    from activities.pricing import price_exchange
    from activities.projection import ProjectionActivities
    from activities.review import ReviewActivities
    from activities.screening import resolve_policy, screen_application, visit_failures
    from activities.submission import SubmissionActivities
    from activities.visits import VisitActivities
    from activities.waitlist import WaitlistActivities
    from schemas.activities import (
        CheckVisitInput,
        ClaimVisitInput,
        ConfirmedPayment,
        HoldFundsInput,
        PostPaymentInput,
        PriceExchangeInput,
        ProjectTransitionInput,
        ReholdFundsInput,
        ReleaseVisitInput,
        ResolvePolicyInput,
        ScreenApplicationInput,
        VoidHoldInput,
        WorkingDayDeadlineInput,
    )
    from schemas.errors import ErrorType, Refusal, refused
    from schemas.exchange import (
        AmendDatesInput,
        ApplicationInput,
        CancelInput,
        ConfirmAttendanceInput,
        ConfirmMatchInput,
        ConfirmPaymentInput,
        ExchangeOutcome,
        ExchangeStatus,
        OfferFundsInput,
        Party,
        Recommendation,
        ReportDecision,
        ReportNoShowInput,
        RuleFailure,
        SignCommitmentInput,
        SubmitReportInput,
        SubmitReviewInput,
        Transition,
        ValidateReportInput,
        WithdrawInput,
    )
    from schemas.funds import FundsHeldInput, FundsReleasedInput, JoinWaitlistInput, LeaveWaitlistInput, WaitingExchange
    from schemas.ids import exchange_workflow_id, hold_key, payment_order_id
    from schemas.policy import Policy
    from schemas.review import (
        AmendApplicationInput,
        AssignmentStatus,
        AssignReviewersInput,
        DeclareConflictInput,
        ExtendReviewDeadlineInput,
        OverrideInput,
        ReassignInput,
        ReopenInput,
        RequestChangesInput,
        ReviewState,
        UpdateAssignmentInput,
    )
    from schemas.review import ReviewDecision as ReviewDecisionKind
    from schemas.search import CX_GRANT_CENTS, CX_HOST_COUNTRY, CX_NEXT_DEADLINE, CX_PARTNERSHIP, CX_STAGE
    from schemas.stages import CANCELLABLE_STAGES, WITHDRAWABLE_STAGES, Stage
    from schemas.submission import ClaimExchangeRunInput
    from workflows import options
    from workflows.review import ReviewBoard, ReviewDecision

SYSTEM_ACTOR = "system"
# workflow.patched ids: each guards a change to the workflow's shape for exchanges already running.
PATCH_R7_VISIT_CLAIM = "r7-visit-claim-at-funding"
PATCH_REVIEW_IN_DEPTH = "review-in-depth"  # assignment, quorum, conflicts, changes, deadlines, appeal
PATCH_WAITLIST_FIFO = "waitlist-fifo"  # the partnership's Funds workflow places holds oldest first
PATCH_AGREEMENT_MATCH = "agreement-match-and-reminders"  # R10 match confirmations, signature reminders
PATCH_EVIDENCE_VERIFIED = "report-evidence-verified"  # a report's files must have been uploaded
PATCH_SEARCH_ATTRIBUTES = "search-attributes"  # CxStage, CxPartnership, ... kept current for ops
# Issue 10: the start is checked (workflow id, submission time, policy version) and the application id
# claimed for this run before anything is touched; confirm_payment counts only in PAYMENT for this
# exchange's order and amount, and an ignored one is recorded in the audit trail.
PATCH_EDGE_CHECKS = "edge-checks"
# Whose deadline each named deadline is: entering a stage drops the deadlines of the stages left behind,
# so `status.deadlines`, the next-deadline search attribute and the read model never show a stale one.
DEADLINE_STAGES: dict[str, Stage] = {
    "review": Stage.REVIEW,
    "review_escalation": Stage.REVIEW,
    "review_grace": Stage.REVIEW,
    "amendment": Stage.REVIEW,
    "appeal": Stage.REJECTED,
    "waitlist": Stage.WAITLISTED,
    "signatures": Stage.AGREEMENT,
    "stay_starts": Stage.TRAVEL,
    "stay_ends": Stage.TRAVEL,
    "report": Stage.REPORTING,
    "report_validation": Stage.REPORTING,
    "payment_sla": Stage.PAYMENT,
}
# How far a submission instant may run ahead of the server's start time (clocks of other machines).
SUBMITTED_AT_CLOCK_SKEW = timedelta(minutes=5)
# The stay never took place: the organisation keeps its one visit (CANCELLED: the policy decides).
VISIT_RELEASING_STAGES = frozenset({Stage.INELIGIBLE, Stage.REJECTED, Stage.EXPIRED, Stage.LAPSED, Stage.WITHDRAWN})


@dataclass(frozen=True)
class _Confirmation:
    """Finance's confirmation as the workflow accepted it (the order and amount were checked on arrival)."""

    payment_reference: str
    confirmed_by: str
    at: datetime


class _LegacyConfirmPayment(BaseModel):
    """The payload of confirm_payment before it named its order (histories recorded before edge checks)."""

    model_config = ConfigDict(extra="ignore")

    payment_reference: str
    confirmed_by: str


class _Ended(Exception):
    """Raised inside the workflow to leave the lifecycle for a terminal stage."""

    def __init__(self, stage: Stage, reason: str, actor_id: str = SYSTEM_ACTOR, *, entered: bool = False) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.actor_id = actor_id
        self.entered = entered  # the stage was already entered (and projected), e.g. REJECTED after its appeal window


@workflow.defn(name="Exchange")
class ExchangeWorkflow:
    """One exchange's life; see the module docstring for stages, messages and deadlines."""

    @workflow.init
    def __init__(self, application: ApplicationInput) -> None:
        self._app = application
        self._stage = Stage.SUBMITTED
        self._policy: Policy | None = None
        self._sequence = 0
        self._history: list[Transition] = []
        self._deadlines: dict[str, datetime] = {}
        self._alerts: list[str] = []
        self._screening_failures: tuple[RuleFailure, ...] = ()
        self._grant_cents: int | None = None
        self._hold_id: int | None = None
        self._held_cents = 0
        self._paid_cents = 0
        self._review: SubmitReviewInput | None = None  # the one-reviewer stage only
        self._board: ReviewBoard | None = None
        # The review stage of exchanges started before review in depth. Set before REVIEW is entered, so a
        # decision arriving while the board is being set up is never taken for a one-reviewer decision.
        self._one_reviewer = False
        self._officers: tuple[str, ...] = ()
        self._not_reviewers: set[str] = {application.submitted_by}  # submitter and amenders (conflict)
        self._reviewed_by: set[str] = set()  # anyone who ever reviewed this application (four-eyes)
        self._changes_requested_by: set[str] = set()  # anyone who sent it back for changes (four-eyes)
        self._review_due: datetime | None = None
        self._grace_at: datetime | None = None
        self._reminded_for: datetime | None = None
        self._escalated = False
        self._reassignment_rounds = 0
        self._review_dirty = False
        self._vacancies_to_fill = False
        self._changes: RequestChangesInput | None = None
        self._amendment: AmendApplicationInput | None = None
        self._override: OverrideInput | None = None
        self._rejected_at: datetime | None = None
        self._reopen: ReopenInput | None = None
        self._signatures: dict[Party, str] = {}
        self._stay_started = False
        self._report: SubmitReportInput | None = None
        self._report_decision: ValidateReportInput | None = None
        self._funds_offered = False
        self._funds_held: FundsHeldInput | None = None
        self._match_required = False
        self._report_pending = False
        self._published: tuple[Stage, int | None, datetime | None] | None = None
        self._match: dict[str, str] = {}
        self._dates_changed = False
        self._amending = False
        self._hold_attempt = 1
        self._no_show: ReportNoShowInput | None = None
        self._attendance: ConfirmAttendanceInput | None = None
        self._waitlisted = False
        self._payment_order_id: str | None = None
        self._payment_confirmation: _Confirmation | None = None
        self._ordered: tuple[str, int] | None = None  # (payment order id, amount in cents) once ordered
        self._stop: _Ended | None = None
        self._closing = False
        self._visit_claimed = False

    @workflow.run
    async def run(self, application: ApplicationInput) -> ExchangeOutcome:
        if workflow.patched(PATCH_EDGE_CHECKS):
            self._check_start()  # refused: the run fails at once, having touched nothing
        try:
            await self._submitted()
            await self._screening()
            await self._review_stage()
            await self._funding()
            await self._agreement()
            await self._travel()
            await self._reporting()
            await self._payment()
        except _Ended as ended:
            return await self._close(ended)
        return await self._close(_Ended(Stage.PAID, "payment confirmed by finance", self._confirmed_by()))

    # --- stages -----------------------------------------------------------------------------

    def _check_start(self) -> None:
        """What the input's schema cannot say: the run is addressed as the contract says, and not from the future."""
        info = workflow.info()
        expected = exchange_workflow_id(self._app.application_id)
        if info.workflow_id != expected:
            raise refused(
                Refusal.INVALID_INPUT,
                f"workflow id: must be {expected!r} (exchange:<application_id>), not {info.workflow_id!r}",
            )
        submitted_at = self._app.submitted_at
        if submitted_at is not None and submitted_at > info.start_time + SUBMITTED_AT_CLOCK_SKEW:
            raise refused(
                Refusal.INVALID_INPUT,
                f"submitted_at: {submitted_at.isoformat()} is in the future (the exchange started at "
                f"{info.start_time.isoformat()})",
            )

    async def _submitted(self) -> None:
        try:
            self._policy = await workflow.execute_activity(
                resolve_policy,
                ResolvePolicyInput(version=self._app.policy_version, on=self._submitted_at().date()),
                start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
                retry_policy=options.COMPUTE_RETRY,
            )
        except ActivityError as error:
            cause = error.cause
            if workflow.patched(PATCH_EDGE_CHECKS) and isinstance(cause, ApplicationError):
                raise refused(Refusal.INVALID_INPUT, f"policy_version: {cause.message}") from None
            raise
        if workflow.patched(PATCH_EDGE_CHECKS):
            await self._claim_run()
        await self._enter(
            Stage.SUBMITTED, self._app.submitted_by, "application received", details=self._submission_details()
        )

    def _submission_details(self) -> dict[str, object] | None:
        """The officer-only fields this start used, for the audit trail (issue 11): who set what."""
        officer_fields = self._app.officer_fields()
        return {"officer_fields": officer_fields} if officer_fields else None

    async def _claim_run(self) -> None:
        """One exchange per application id, forever: a second run under a closed exchange's id ends here."""
        info = workflow.info()
        claim = await workflow.execute_activity_method(
            SubmissionActivities.claim_exchange_run,
            ClaimExchangeRunInput(
                application_id=self._app.application_id,
                workflow_id=info.workflow_id,
                run_id=info.first_execution_run_id,
                started_at=info.start_time,
            ),
            **options.DATABASE,
        )
        if not claim.claimed:
            raise refused(
                Refusal.DUPLICATE_APPLICATION,
                f"application_id {self._app.application_id!r}: already started an exchange (run {claim.owner_run_id}, "
                f"{claim.claimed_at.isoformat()}); each application id starts exactly one exchange, so this run "
                "ends here and changes nothing",
            )

    async def _screening(self) -> None:
        await self._enter(Stage.SCREENING, SYSTEM_ACTOR)
        result = await workflow.execute_activity(
            screen_application,
            ScreenApplicationInput(application=self._app, policy=self.policy, submitted_at=self._submitted_at()),
            start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )
        failures = result.failures
        details: dict[str, object] = {
            "input_digest": result.input_digest,
            "working_days": result.working_days,
            "distance_km": result.distance_km,
        }
        if workflow.patched(PATCH_EDGE_CHECKS):
            # R7 early: an organisation whose one visit is used or held elsewhere is refused before reviewers
            # spend time on it. The atomic claim at FUNDING still decides a race between two live applications.
            visit = await workflow.execute_activity_method(
                VisitActivities.check_visit,
                CheckVisitInput(
                    organisation_id=self._app.visitor.organisation_id, application_id=self._app.application_id
                ),
                **options.DATABASE,
            )
            details["r7"] = visit.model_dump(mode="json")
            failures = (*failures, *visit_failures(self._app.visitor, visit))
        self._screening_failures = failures
        await self._record(
            "screening_decided",
            SYSTEM_ACTOR,
            "ineligible" if failures else "eligible",
            {"failures": [f.model_dump() for f in failures], **details},
        )
        if failures:
            raise _Ended(Stage.INELIGIBLE, "; ".join(f"{f.rule} ({f.field}): {f.message}" for f in failures))
        self._raise_if_stopped()

    async def _review_stage(self) -> None:
        if workflow.patched(PATCH_REVIEW_IN_DEPTH):
            await self._review_in_depth()
        else:
            await self._review_by_one_reviewer()

    async def _review_by_one_reviewer(self) -> None:
        """The first review stage (one reviewer decides); kept for exchanges started before review in depth."""
        self._one_reviewer = True
        rules = self.policy.deadlines
        due = await self._working_day_deadline(rules.review_working_days)
        self._deadlines["review"] = due
        await self._enter(Stage.REVIEW, SYSTEM_ACTOR)
        if not await self._wait_until(lambda: self._review is not None, due):
            escalated_due = await self._working_day_deadline(rules.review_escalation_working_days)
            self._deadlines["review_escalation"] = escalated_due
            await self._alert("review_escalated", f"no review decision by {due.isoformat()}; escalated to an officer")
            if not await self._wait_until(lambda: self._review is not None, escalated_due):
                raise _Ended(Stage.LAPSED, f"no review decision by {escalated_due.isoformat()}")
        review = self._review
        assert review is not None
        if review.recommendation is Recommendation.REJECT:
            raise _Ended(Stage.REJECTED, review.comment or "rejected at review", review.actor_id)

    # --- REVIEW in depth ----------------------------------------------------------------------

    async def _review_in_depth(self) -> None:
        """Assign reviewers, collect reviews to a quorum, handle changes and deadlines; a rejection stays
        open to an officer's reopening for the policy's appeal window."""
        await self._enter(Stage.REVIEW, SYSTEM_ACTOR)
        while True:
            # A reopened application is heard by reviewers who have not seen it before (fresh eyes).
            earlier = self._board.ever_assigned if self._board else set()
            self._board = ReviewBoard(self.policy.review, ever_assigned=set(earlier))
            decision = await self._review_round()
            await self._record("review_decided", decision.actor_id, decision.reason, {"approved": decision.approved})
            await self._close_open_assignments()
            if decision.approved:
                return
            await self._await_appeal(decision)
            await self._enter(Stage.REVIEW, self._reopen.actor_id if self._reopen else SYSTEM_ACTOR, "reopened")
            self._reopen = None

    async def _review_round(self) -> ReviewDecision:
        self._review_due = await self._working_day_deadline(self.policy.deadlines.review_working_days)
        self._deadlines["review"] = self._review_due
        self._escalated, self._reminded_for, self._reassignment_rounds = False, None, 0
        await self._fill_vacancies()
        while True:
            self._review_dirty = False
            if self._override is not None:
                override, self._override = self._override, None
                approved = override.decision is ReviewDecisionKind.APPROVE
                return ReviewDecision(approved, f"officer override: {override.justification}", override.actor_id)
            if self._changes is not None:
                await self._await_amendment()
                continue
            if self._vacancies_to_fill:
                await self._fill_vacancies()
            decision = self.board.decision()
            if decision is not None:
                return decision
            timer_at, timer = self._next_review_timer()
            if not await self._wait_until(lambda: self._review_dirty, timer_at):
                await self._on_review_timer(timer)

    def _next_review_timer(self) -> tuple[datetime, str]:
        assert self._review_due is not None
        if self._reminded_for != self._review_due:
            return self._review_due - timedelta(days=self.policy.review.reminder_days_before_due), "reminder"
        if not self._escalated:
            return self._review_due, "due"
        assert self._grace_at is not None
        return self._grace_at, "grace"

    async def _on_review_timer(self, timer: str) -> None:
        silent = self.board.silent()
        if timer == "reminder":
            self._reminded_for = self._review_due
            await self._record("review_reminder", SYSTEM_ACTOR, f"due {self._due_text()}", {"reviewers": silent})
        elif timer == "due":
            self._escalated = True
            self._grace_at = await self._working_day_deadline(self.policy.review.reassign_grace_working_days)
            self._deadlines["review_grace"] = self._grace_at
            await self._alert(
                "review_escalated",
                f"no quorum by {self._due_text()}; escalated to officers {list(self._officers)}; silent: {silent}",
            )
        else:
            self._reassignment_rounds += 1
            if self._reassignment_rounds > self.policy.review.max_reassignment_rounds:
                raise _Ended(Stage.LAPSED, f"no review quorum after {self._reassignment_rounds - 1} reassignments")
            for reviewer_id in silent:
                await self._unassign(reviewer_id, AssignmentStatus.REASSIGNED, "silent past the grace period")
            self._review_due = await self._working_day_deadline(self.policy.deadlines.review_working_days)
            await self._fill_vacancies()
            self._deadlines["review"] = self._review_due
            self._deadlines.pop("review_grace", None)
            self._escalated, self._reminded_for = False, None
            await self._move_open_deadlines()

    async def _fill_vacancies(self) -> None:
        self._vacancies_to_fill = False
        wanted = self.board.vacancies()
        if wanted == 0:
            return
        assert self._review_due is not None
        result = await workflow.execute_activity_method(
            ReviewActivities.assign_reviewers,
            AssignReviewersInput(
                application_id=self._app.application_id,
                partnership_id=self._app.visitor_partnership_id,
                visitor_organisation_id=self._app.visitor.organisation_id,
                host_organisation_id=self._app.host.organisation_id,
                excluded_reviewer_ids=frozenset(self.board.ever_assigned | self._not_reviewers),
                count=wanted,
                due_at=self._review_due,
                on=workflow.now().date(),
            ),
            **options.DATABASE,
        )
        self.board.assign(result.assigned)
        self._officers = result.officers
        await self._record(
            "reviewers_assigned",
            SYSTEM_ACTOR,
            ", ".join(a.reviewer_id for a in result.assigned) or "nobody",
            {"assigned": [a.model_dump() for a in result.assigned], "shortfall": result.shortfall},
        )
        if result.shortfall:
            self._escalated = True
            self._grace_at = await self._working_day_deadline(self.policy.review.reassign_grace_working_days)
            await self._alert(
                "review_escalated",
                f"{result.shortfall} of {wanted} reviewer(s) could not be assigned (conflicts, availability); "
                f"officers {list(result.officers)} must act",
            )

    async def _unassign(self, reviewer_id: str, status: AssignmentStatus, reason: str) -> None:
        self.board.remove(reviewer_id, status)
        self._vacancies_to_fill = True
        await self._update_assignment(reviewer_id, status)
        await self._record("reviewer_" + status.value, reviewer_id, reason)

    async def _update_assignment(
        self, reviewer_id: str, status: AssignmentStatus, due_at: datetime | None = None
    ) -> None:
        await workflow.execute_activity_method(
            ReviewActivities.update_assignment,
            UpdateAssignmentInput(
                application_id=self._app.application_id, reviewer_id=reviewer_id, status=status, due_at=due_at
            ),
            **options.DATABASE,
        )

    async def _move_open_deadlines(self) -> None:
        """The review deadline moved: inboxes order by it, so every open assignment follows."""
        for reviewer_id in self.board.silent():
            await self._update_assignment(reviewer_id, AssignmentStatus.OPEN, self._review_due)

    async def _close_open_assignments(self) -> None:
        """The review stage ended: nobody should still find this application in their inbox."""
        if self._board is None:
            return
        for reviewer_id in self._board.silent():
            self._board.statuses[reviewer_id] = AssignmentStatus.CLOSED
            await self._update_assignment(reviewer_id, AssignmentStatus.CLOSED)

    async def _await_amendment(self) -> None:
        changes = self._changes
        assert changes is not None
        due = workflow.now() + timedelta(days=self.policy.review.amendment_days)
        self._deadlines["amendment"] = due
        if not await self._wait_until(lambda: self._amendment is not None, due):
            raise _Ended(Stage.LAPSED, f"no answer to the request for changes by {due.isoformat()}")
        amendment = self._amendment
        assert amendment is not None
        self._app, self._changes, self._amendment = amendment.application, None, None
        self._deadlines.pop("amendment", None)
        self._not_reviewers.add(amendment.actor_id)
        if self.board.is_assigned(amendment.actor_id):
            await self._unassign(amendment.actor_id, AssignmentStatus.REASSIGNED, "amended the application")
        await self._screening()  # the amended application is screened again
        await self._enter(Stage.REVIEW, amendment.actor_id, "amended after a request for changes")
        self._review_due = await self._working_day_deadline(self.policy.deadlines.review_working_days)
        self._deadlines["review"] = self._review_due
        self._escalated, self._reminded_for = False, None
        await self._move_open_deadlines()

    async def _await_appeal(self, decision: ReviewDecision) -> None:
        """REJECTED, but an officer may reopen within the appeal window; then it is final."""
        self._rejected_at = workflow.now()
        await self._enter(Stage.REJECTED, decision.actor_id, decision.reason)
        window_ends = workflow.now() + timedelta(days=self.policy.review.appeal_days)
        self._deadlines = {"appeal": window_ends}
        if not await self._wait_until(lambda: self._reopen is not None, window_ends):
            raise _Ended(Stage.REJECTED, decision.reason, decision.actor_id, entered=True)
        self._deadlines.pop("appeal", None)
        self._rejected_at = None

    @property
    def board(self) -> ReviewBoard:
        assert self._board is not None, "the review board exists in review in depth"
        return self._board

    def _due_text(self) -> str:
        return self._review_due.isoformat() if self._review_due else "?"

    def _review_state(self) -> ReviewState | None:
        if self._board is None:
            return None
        return ReviewState(
            due_at=self._review_due,
            assignments=self._board.states(),
            submitted_by=tuple(sorted(self._board.reviews)),
            officers=self._officers,
            changes_requested=self._changes.changes if self._changes else None,
            escalated=self._escalated,
            reassignment_rounds=self._reassignment_rounds,
            rejected_at=self._rejected_at,
        )

    async def _funding(self) -> None:
        await self._enter(Stage.FUNDING, SYSTEM_ACTOR)
        if workflow.patched(PATCH_R7_VISIT_CLAIM):
            await self._claim_visit()
        pricing = await workflow.execute_activity(
            price_exchange,
            PriceExchangeInput(application=self._app, policy=self.policy),
            start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )
        self._grant_cents = pricing.amount_cents
        await self._record(
            "priced",
            SYSTEM_ACTOR,
            f"lump sum {pricing.amount_cents} cents",
            {
                "full_rate_cents": pricing.full_rate_cents,
                "halved_because": list(pricing.halved_because),
                "breakdown": list(pricing.breakdown),
                "input_digest": pricing.input_digest,
            },
        )
        waitlist_due = workflow.now() + timedelta(days=self.policy.deadlines.waitlist_days)
        if workflow.patched(PATCH_WAITLIST_FIFO):
            if not await self._try_hold():
                await self._wait_in_line(waitlist_due)
            self._raise_if_stopped()
            return
        while True:
            # Cleared before the attempt, so an offer that arrives while it runs is not lost.
            self._funds_offered = False
            if await self._try_hold():
                break
            if self._stage is not Stage.WAITLISTED:
                self._deadlines["waitlist"] = waitlist_due
                await self._enter(Stage.WAITLISTED, SYSTEM_ACTOR, "the partnership's budget cannot cover the grant")
            if not await self._wait_until(lambda: self._funds_offered, waitlist_due):
                raise _Ended(Stage.EXPIRED, f"no funds released in the partnership by {waitlist_due.isoformat()}")
        self._raise_if_stopped()

    async def _wait_in_line(self, due: datetime) -> None:
        """WAITLISTED: join the partnership's FIFO; its Funds workflow places our hold when our turn comes."""
        assert self._grant_cents is not None
        self._deadlines["waitlist"] = due
        await self._enter(Stage.WAITLISTED, SYSTEM_ACTOR, "the partnership's budget cannot cover the grant")
        self._waitlisted = True
        await workflow.execute_activity_method(
            WaitlistActivities.join_waitlist,
            JoinWaitlistInput(
                partnership_id=self._app.visitor_partnership_id,
                waiting=WaitingExchange(
                    application_id=self._app.application_id,
                    amount_cents=self._grant_cents,
                    hold_key=hold_key(self._app.application_id),
                    joined_at=workflow.now(),
                ),
            ),
            **options.DATABASE,
        )
        if not await self._wait_until(lambda: self._funds_held is not None, due):
            await self._leave_waitlist()  # a hold placed at the last moment is ours: then we go on
            if self._hold_id is None:
                raise _Ended(Stage.EXPIRED, f"no funds released in the partnership by {due.isoformat()}")
        self._take_waitlist_hold()
        self._waitlisted = False
        self._deadlines.pop("waitlist", None)
        await self._record(
            "funds_held", SYSTEM_ACTOR, f"{self._held_cents} cents held from the waitlist", {"hold_id": self._hold_id}
        )

    def _take_waitlist_hold(self) -> None:
        if self._funds_held is not None and self._hold_id is None:
            self._hold_id, self._held_cents = self._funds_held.hold_id, self._funds_held.amount_cents

    async def _leave_waitlist(self) -> None:
        """Stop waiting; adopt any hold the waitlist placed for us (so `_close` voids it if we end)."""
        left = await workflow.execute_activity_method(
            WaitlistActivities.leave_waitlist,
            LeaveWaitlistInput(
                partnership_id=self._app.visitor_partnership_id, application_id=self._app.application_id
            ),
            **options.DATABASE,
        )
        self._waitlisted = False
        self._take_waitlist_hold()
        if left.hold_id is not None and self._hold_id is None and self._grant_cents is not None:
            self._hold_id, self._held_cents = left.hold_id, self._grant_cents

    async def _announce_release(self, reason: str) -> None:
        """Money came back to the budget: the partnership's waitlist may now serve its oldest exchange."""
        if not workflow.patched(PATCH_WAITLIST_FIFO):
            return
        await workflow.execute_activity_method(
            WaitlistActivities.announce_release,
            FundsReleasedInput(partnership_id=self._app.visitor_partnership_id, reason=reason),
            **options.DATABASE,
        )

    async def _agreement(self) -> None:
        due = workflow.now() + timedelta(days=self.policy.deadlines.signature_days)
        self._deadlines["signatures"] = due
        await self._enter(Stage.AGREEMENT, SYSTEM_ACTOR)
        if not workflow.patched(PATCH_AGREEMENT_MATCH):
            if not await self._wait_until(lambda: len(self._signatures) == len(Party), due):
                missing = sorted(p.value for p in Party if p not in self._signatures)
                raise _Ended(
                    Stage.LAPSED, f"Commitment to Quality not signed by {', '.join(missing)} by {due.isoformat()}"
                )
            return
        # R10: both sides confirm the match and the four parties sign; reminders go to whoever is missing.
        self._match_required = True
        reminders = sorted(due - timedelta(days=d) for d in self.policy.deadlines.signature_reminder_days_before)
        for reminder_at in [r for r in reminders if r > workflow.now()]:
            if await self._wait_until(self._agreement_complete, reminder_at):
                return
            await self._record(
                "agreement_reminder", SYSTEM_ACTOR, f"due {due.isoformat()}", {"missing": self._missing()}
            )
        if not await self._wait_until(self._agreement_complete, due):
            raise _Ended(
                Stage.LAPSED, f"agreement incomplete by {due.isoformat()}: missing {', '.join(self._missing())}"
            )

    def _agreement_complete(self) -> bool:
        return not self._missing()

    def _missing(self) -> list[str]:
        missing = [p.value for p in Party if p not in self._signatures]
        if self._match_required:
            missing += [f"match confirmation by {side}" for side in ("host", "visitor") if side not in self._match]
        return missing

    async def _travel(self) -> None:
        await self._enter(Stage.TRAVEL, SYSTEM_ACTOR)
        # Dates may be amended until the stay starts: then the timer is set again for the new start.
        while True:
            self._dates_changed = False
            starts_at = datetime.combine(self._app.start_date, time(0, 0), tzinfo=UTC)
            self._deadlines["stay_starts"] = starts_at
            self._deadlines["stay_ends"] = self._stay_ends_at()
            await self._wait_until(lambda: self._dates_changed, starts_at)
            if not self._dates_changed:
                break
        self._stay_started = True
        await self._record("stay_started", SYSTEM_ACTOR)
        await self._wait_until(lambda: self._no_show is not None, self._stay_ends_at())
        if self._no_show is not None:
            raise _Ended(
                Stage.CANCELLED, f"no-show reported by the host: {self._no_show.reason}", self._no_show.actor_id
            )
        await self._record("stay_ended", SYSTEM_ACTOR)

    def _stay_ends_at(self) -> datetime:
        return datetime.combine(self._app.end_date + timedelta(days=1), time(0, 0), tzinfo=UTC)

    async def _reporting(self) -> None:
        rules = self.policy.deadlines
        stay_ended = self._deadlines["stay_ends"]
        due = stay_ended + timedelta(days=rules.report_days)
        self._deadlines["report"] = due
        await self._enter(Stage.REPORTING, SYSTEM_ACTOR)
        reminders = [stay_ended + timedelta(days=d) for d in rules.report_reminder_days]
        while True:
            for reminder_at in [r for r in reminders if r > workflow.now()]:
                if await self._wait_until(lambda: self._report is not None, reminder_at):
                    break
                await self._record("report_reminder", SYSTEM_ACTOR, f"report due by {due.isoformat()}")
            if not await self._wait_until(lambda: self._report is not None, due):
                raise _Ended(Stage.FORFEITED, f"no accepted report by {due.isoformat()}")
            decision_due = await self._working_day_deadline(rules.review_working_days)
            self._deadlines["report_validation"] = decision_due
            if not await self._wait_until(lambda: self._report_decision is not None, decision_due):
                await self._alert("report_validation_late", f"report not validated by {decision_due.isoformat()}")
                last_due = decision_due + timedelta(days=rules.payment_confirmation_max_days)
                if not await self._wait_until(lambda: self._report_decision is not None, last_due):
                    raise _Ended(Stage.CANCELLED, f"the report was never validated (by {last_due.isoformat()})")
            decision = self._report_decision
            assert decision is not None
            if decision.decision is ReportDecision.ACCEPT:
                return
            # Returned for resubmission: the visitor may submit again until the report deadline.
            self._report, self._report_decision = None, None

    async def _payment(self) -> None:
        rules = self.policy.deadlines
        self._raise_if_stopped()  # a cancellation accepted together with the report's acceptance wins
        await self._enter(Stage.PAYMENT, SYSTEM_ACTOR)
        report = self._report
        assert report is not None and self._hold_id is not None
        final = await workflow.execute_activity(
            price_exchange,
            PriceExchangeInput(
                application=self._app,
                policy=self.policy,
                actual_end_date=report.actual_end_date
                or (self._attendance.actual_end_date if self._attendance else None),
            ),
            start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )
        amount_cents = min(final.amount_cents, self._held_cents)  # never above the hold
        # From here a confirmation of this order, for this amount, counts (finance may answer quickly).
        self._ordered = (payment_order_id(self._app.application_id), amount_cents)
        payment = await workflow.execute_activity_method(
            PaymentActivities.post_payment,
            PostPaymentInput(
                exchange_id=self._app.application_id,
                partnership_id=self._app.visitor_partnership_id,
                hold_id=self._hold_id,
                amount_cents=amount_cents,
                idempotency_key=f"{self._app.application_id}:payment",
            ),
            **options.DATABASE,
        )
        self._payment_order_id = payment.payment_order_id
        self._paid_cents, self._held_cents, self._hold_id = payment.posted_cents, 0, None
        sla_due = workflow.now() + timedelta(days=rules.payment_sla_days)
        last_due = workflow.now() + timedelta(days=rules.payment_confirmation_max_days)
        self._deadlines["payment_sla"] = sla_due
        await self._record(
            "payment_ordered",
            SYSTEM_ACTOR,
            f"payment order {payment.payment_order_id}",
            {
                "posted_cents": payment.posted_cents,
                "released_cents": payment.released_cents,
                "final_amount_cents": final.amount_cents,
                "final_breakdown": list(final.breakdown),
                "final_input_digest": final.input_digest,
            },
        )
        if payment.released_cents > 0:
            await self._announce_release(
                f"{self._app.application_id} paid {payment.released_cents} cents less than held"
            )
        confirmed = lambda: self._payment_confirmation is not None  # noqa: E731
        if not await self._wait_until(confirmed, sla_due):
            await self._alert("payment_sla_missed", f"finance has not confirmed by {sla_due.isoformat()}")
            if not await self._wait_until(confirmed, last_due):
                await self._alert("payment_unconfirmed", f"still unconfirmed at {last_due.isoformat()}")
                raise _Ended(Stage.PAYMENT, "payment ordered but never confirmed by finance; see alerts")

    # --- closing ----------------------------------------------------------------------------

    async def _close(self, ended: _Ended) -> ExchangeOutcome:
        self._closing = True  # from here on, every update is refused
        if self._waitlisted:
            await self._leave_waitlist()
        if self._hold_id is not None:
            await self._void_hold(ended.stage)
        if self._visit_claimed and self._visit_is_released_by(ended.stage):
            await workflow.execute_activity_method(
                VisitActivities.release_visit,
                ReleaseVisitInput(application_id=self._app.application_id, reason=ended.stage.value),
                **options.DATABASE,
            )
            self._visit_claimed = False
        self._deadlines.clear()
        await self._close_open_assignments()
        if not ended.entered:
            await self._enter(ended.stage, ended.actor_id, ended.reason, self._paid_confirmation(ended.stage))
        # Let in-flight update handlers (their audit rows) finish before the run completes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ExchangeOutcome(
            application_id=self._app.application_id,
            stage=ended.stage,
            reason=ended.reason,
            grant_cents=self._grant_cents,
            paid_cents=self._paid_cents,
        )

    async def _void_hold(self, stage: Stage) -> None:
        assert self._hold_id is not None
        voided = await workflow.execute_activity_method(
            LedgerActivities.void_hold,
            VoidHoldInput(hold_id=self._hold_id, idempotency_key=f"{self._app.application_id}:void:{self._hold_id}"),
            **options.DATABASE,
        )
        self._hold_id, self._held_cents = None, 0
        await self._record("hold_voided", SYSTEM_ACTOR, f"{voided.released_cents} cents back to the budget ({stage})")
        await self._announce_release(f"{self._app.application_id} ended {stage.value}")

    async def _claim_visit(self) -> None:
        """R7: claim the visitor's one visit; another live exchange of its organisation makes this one ineligible."""
        claim = await workflow.execute_activity_method(
            VisitActivities.claim_visit,
            ClaimVisitInput(organisation_id=self._app.visitor.organisation_id, application_id=self._app.application_id),
            **options.DATABASE,
        )
        if not claim.claimed:
            failure = RuleFailure(
                rule="R7",
                field="visitor.organisation_id",
                message=f"{self._app.visitor.name} has already used its one visit in the scheme "
                f"(exchange {claim.held_by_application_id or 'on record'}); an organisation may visit only once.",
            )
            self._screening_failures = (*self._screening_failures, failure)
            raise _Ended(Stage.INELIGIBLE, f"R7 ({failure.field}): {failure.message}")
        self._visit_claimed = True
        self._raise_if_stopped()

    def _visit_is_released_by(self, stage: Stage) -> bool:
        """Exchanges that end without the stay taking place give the organisation its visit back (R7)."""
        if stage is Stage.CANCELLED:
            return not self.policy.eligibility.cancelled_uses_visit
        return stage in VISIT_RELEASING_STAGES

    # --- helpers ----------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        assert self._policy is not None, "policy is resolved before any stage runs"
        return self._policy

    def _submitted_at(self) -> datetime:
        return self._app.submitted_at or workflow.info().start_time

    def _confirmed_by(self) -> str:
        return self._payment_confirmation.confirmed_by if self._payment_confirmation else SYSTEM_ACTOR

    def _paid_confirmation(self, stage: Stage) -> ConfirmedPayment | None:
        """On the way into PAID: finance's answer, for payment_orders and the audit row of that same step."""
        confirmation = self._payment_confirmation
        if stage is not Stage.PAID or confirmation is None or self._payment_order_id is None:
            return None
        return ConfirmedPayment(
            payment_order_id=self._payment_order_id,
            amount_cents=self._paid_cents,
            payment_reference=confirmation.payment_reference,
            confirmed_by=confirmation.confirmed_by,
            confirmed_at=confirmation.at,
        )

    async def _try_hold(self) -> bool:
        assert self._grant_cents is not None
        result = await workflow.execute_activity_method(
            LedgerActivities.hold_funds,
            HoldFundsInput(
                exchange_id=self._app.application_id,
                partnership_id=self._app.visitor_partnership_id,
                amount_cents=self._grant_cents,
                idempotency_key=hold_key(self._app.application_id),
            ),
            **options.DATABASE,
        )
        if result.held:
            self._hold_id, self._held_cents = result.transfer_id, self._grant_cents
            await self._record(
                "funds_held", SYSTEM_ACTOR, f"{self._grant_cents} cents held", {"hold_id": self._hold_id}
            )
        return result.held

    async def _wait_until(self, condition: Callable[[], bool], deadline: datetime) -> bool:
        """Wait for condition until deadline; True if it held. A withdrawal or cancellation ends the wait."""
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: condition() or self._stop is not None, timeout=remaining)
        self._raise_if_stopped()
        return condition()

    def _raise_if_stopped(self) -> None:
        if self._stop is not None:
            raise self._stop

    async def _working_day_deadline(self, working_days: int) -> datetime:
        return await workflow.execute_local_activity(
            working_day_deadline,
            WorkingDayDeadlineInput(start=workflow.now(), working_days=working_days, country=self._app.visitor.country),
            start_to_close_timeout=options.LOCAL_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )

    async def _enter(
        self,
        stage: Stage,
        actor_id: str,
        reason: str = "",
        paid: ConfirmedPayment | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        self._stage = stage
        if workflow.patched(PATCH_EDGE_CHECKS):
            self._deadlines = {k: v for k, v in self._deadlines.items() if DEADLINE_STAGES.get(k, stage) is stage}
        self._history.append(Transition(stage=stage, at=workflow.now(), actor_id=actor_id, reason=reason))
        workflow.logger.info("stage %s", stage.value, extra={"stage": stage.value, "reason": reason})
        if paid:
            details = {**(details or {}), **paid.model_dump(mode="json")}
        await self._record("stage_entered", actor_id, reason, details, payment_confirmation=paid)

    async def _alert(self, event: str, message: str) -> None:
        self._alerts.append(f"{event}: {message}")
        workflow.logger.warning("alert %s: %s", event, message)
        await self._record(event, SYSTEM_ACTOR, message)

    async def _record(
        self,
        event: str,
        actor_id: str,
        reason: str = "",
        details: dict[str, object] | None = None,
        *,
        payment_confirmation: ConfirmedPayment | None = None,
    ) -> None:
        """Project the current state and one audit event to Postgres (idempotent by sequence)."""
        self._sequence += 1
        upcoming = [d for d in self._deadlines.values() if d > workflow.now()]
        self._publish_search_attributes(min(upcoming) if upcoming else None)
        try:
            await self._project(event, actor_id, reason, details, payment_confirmation, upcoming)
        except ActivityError as error:
            # Postgres refused this event's data even after sanitising (activities/projection.py): a bug,
            # alerted there. The exchange's life and money must not stop on its read model: note and go on.
            cause = error.cause
            if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.PROJECTION_REJECTED):
                raise
            self._alerts.append(f"projection_rejected: {event} #{self._sequence}: {cause.message}")
            workflow.logger.error("projection rejected: %s", cause.message)

    async def _project(
        self,
        event: str,
        actor_id: str,
        reason: str,
        details: dict[str, object] | None,
        payment_confirmation: ConfirmedPayment | None,
        upcoming: list[datetime],
    ) -> None:
        await workflow.execute_activity_method(
            ProjectionActivities.record_transition,
            ProjectTransitionInput(
                application=self._app,
                stage=self._stage,
                at=workflow.now(),
                actor_id=actor_id,
                reason=reason,
                event=event,
                sequence=self._sequence,
                grant_cents=self._grant_cents,
                held_cents=self._held_cents,
                paid_cents=self._paid_cents,
                next_deadline=min(upcoming) if upcoming else None,
                policy_version=self._policy.version if self._policy else None,
                details=details or {},
                payment_confirmation=payment_confirmation,
            ),
            **options.DATABASE,
        )

    def _publish_search_attributes(self, next_deadline: datetime | None) -> None:
        """Keep ops' filters (stage, partnership, host country, grant, next deadline) current, on change only."""
        published = (self._stage, self._grant_cents, next_deadline)
        if published == self._published or not workflow.patched(PATCH_SEARCH_ATTRIBUTES):
            return
        self._published = published
        updates: list[SearchAttributeUpdate[Any]] = [
            CX_STAGE.value_set(self._stage.value),
            CX_PARTNERSHIP.value_set(self._app.visitor_partnership_id),
            CX_HOST_COUNTRY.value_set(self._app.host.country),
            CX_GRANT_CENTS.value_set(self._grant_cents)
            if self._grant_cents is not None
            else CX_GRANT_CENTS.value_unset(),
            CX_NEXT_DEADLINE.value_set(next_deadline) if next_deadline else CX_NEXT_DEADLINE.value_unset(),
        ]
        workflow.upsert_search_attributes(updates)

    # --- messages ---------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> ExchangeStatus:
        return ExchangeStatus(
            application_id=self._app.application_id,
            stage=self._stage,
            partnership_id=self._app.visitor_partnership_id,
            policy_version=self._policy.version if self._policy else None,
            grant_cents=self._grant_cents,
            held_cents=self._held_cents,
            paid_cents=self._paid_cents,
            hold_transfer_id=self._hold_id,
            deadlines=dict(self._deadlines),
            signatures=dict(self._signatures),
            parties=self._party_ids(),
            match_confirmed_by=dict(self._match),
            start_date=self._app.start_date,
            end_date=self._app.end_date,
            stay_started=self._stay_started,
            attendance_confirmed_by=self._attendance.actor_id if self._attendance else None,
            actual_end_date=self._attendance.actual_end_date if self._attendance else None,
            report_submitted=self._report is not None and self._report_decision is None,
            screening_failures=self._screening_failures,
            payment_order_id=self._payment_order_id,
            payment_reference=self._payment_confirmation.payment_reference if self._payment_confirmation else None,
            alerts=tuple(self._alerts),
            review=self._review_state(),
            history=tuple(self._history),
        )

    @workflow.update(name="submit_review")
    async def submit_review(self, decision: SubmitReviewInput) -> ExchangeStatus:
        if self._board is None:
            self._review = decision
        else:
            self._board.submit(decision)
            self._reviewed_by.add(decision.actor_id)
            self._review_dirty = True
        await self._record(
            "review_submitted",
            decision.actor_id,
            decision.comment,
            {"recommendation": decision.recommendation.value, "scores": decision.scores},
        )
        if self._board is not None:
            await self._update_assignment(decision.actor_id, AssignmentStatus.SUBMITTED)
        return self.status()

    @submit_review.validator
    def _validate_review(self, decision: SubmitReviewInput) -> None:
        self._require_stage("submit_review", {Stage.REVIEW})
        if decision.actor_id in self._not_reviewers:
            raise refused(
                Refusal.NOT_ALLOWED, "actor_id: the person who submitted or amended the application cannot review it"
            )
        if self._one_reviewer:
            if self._review is not None:
                raise refused(
                    Refusal.ALREADY_RECORDED,
                    f"submit_review: a decision was already recorded by {self._review.actor_id}",
                )
            return
        self._require_board("submit_review")
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

    @workflow.update(name="declare_conflict")
    async def declare_conflict(self, request: DeclareConflictInput) -> ExchangeStatus:
        await self._unassign(request.actor_id, AssignmentStatus.RECUSED, request.reason)
        self._review_dirty = True
        return self.status()

    @declare_conflict.validator
    def _validate_conflict(self, request: DeclareConflictInput) -> None:
        self._require_review_in_depth("declare_conflict")
        if not self.board.is_assigned(request.actor_id):
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {request.actor_id} is not assigned to review this application"
            )

    @workflow.update(name="request_changes")
    async def request_changes(self, request: RequestChangesInput) -> ExchangeStatus:
        self._changes = request
        self._changes_requested_by.add(request.actor_id)
        invalidated = self.board.invalidate_reviews()
        self._review_dirty = True
        await self._record("changes_requested", request.actor_id, request.changes, {"invalidated_reviews": invalidated})
        for reviewer_id in invalidated:
            await self._update_assignment(reviewer_id, AssignmentStatus.OPEN)
        return self.status()

    @request_changes.validator
    def _validate_request_changes(self, request: RequestChangesInput) -> None:
        self._require_review_in_depth("request_changes")
        self._require_no_pending_changes("request_changes")
        if not (self.board.is_assigned(request.actor_id) or request.actor_id in self._officers):
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {request.actor_id} is neither an assigned reviewer nor a programme officer",
            )

    @workflow.update(name="amend_application")
    async def amend_application(self, amendment: AmendApplicationInput) -> ExchangeStatus:
        self._amendment = amendment
        self._review_dirty = True
        await self._record("application_amended", amendment.actor_id, "answer to the request for changes")
        return self.status()

    @amend_application.validator
    def _validate_amendment(self, amendment: AmendApplicationInput) -> None:
        self._require_review_in_depth("amend_application")
        if self._changes is None or self._amendment is not None:
            raise refused(Refusal.WRONG_STAGE, "amend_application: no request for changes is waiting for an answer")
        amended = amendment.application
        if amended.application_id != self._app.application_id:
            raise refused(Refusal.INVALID_INPUT, "application.application_id: an amendment keeps the application's id")
        if amended.visitor_partnership_id != self._app.visitor_partnership_id:
            raise refused(
                Refusal.INVALID_INPUT,
                "application.visitor_partnership_id: an amendment cannot move to another partnership",
            )
        # Who submitted, when, under which policy and with which agency approval are not the applicant's to
        # change: an amendment keeps them as they were (issue 11).
        kept = (
            "submitted_by",
            "submitted_at",
            "policy_version",
            "host_agency_approved",
            "host_agency_approval_reference",
        )
        changed = [name for name in kept if getattr(amended, name) != getattr(self._app, name)]
        if changed:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"application.{changed[0]}: an amendment keeps {', '.join(changed)} as submitted",
            )
        if amendment.actor_id in self.board.ever_assigned or amendment.actor_id in self._officers:
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {amendment.actor_id} reviews this application and cannot amend it"
            )

    @workflow.update(name="reassign")
    async def reassign(self, request: ReassignInput) -> ExchangeStatus:
        await self._unassign(request.reviewer_id, AssignmentStatus.REASSIGNED, request.justification)
        self._review_dirty = True
        return self.status()

    @reassign.validator
    def _validate_reassign(self, request: ReassignInput) -> None:
        self._require_review_in_depth("reassign")
        self._require_officer("reassign", request.actor_id)
        if not self.board.is_assigned(request.reviewer_id):
            raise refused(
                Refusal.INVALID_INPUT, f"reviewer_id: {request.reviewer_id} is not assigned to this application"
            )

    @workflow.update(name="override")
    async def override(self, request: OverrideInput) -> ExchangeStatus:
        self._override = request
        self._review_dirty = True
        await self._record("review_overridden", request.actor_id, request.justification, {"decision": request.decision})
        return self.status()

    @override.validator
    def _validate_override(self, request: OverrideInput) -> None:
        self._require_review_in_depth("override")
        self._require_officer("override", request.actor_id)
        # Four-eyes against the officer's own earlier acts on this application.
        own_act = (
            "reviewed"
            if request.actor_id in self._reviewed_by
            else "submitted or amended"
            if request.actor_id in self._not_reviewers
            else "requested changes to"
            if request.actor_id in self._changes_requested_by
            else None
        )
        if own_act:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {request.actor_id} {own_act} this application and cannot override (four-eyes)",
            )
        if self._override is not None:
            raise refused(Refusal.ALREADY_RECORDED, "override: an override is already being applied")

    @workflow.update(name="extend_review_deadline")
    async def extend_review_deadline(self, request: ExtendReviewDeadlineInput) -> ExchangeStatus:
        assert self._review_due is not None
        self._review_due = await workflow.execute_local_activity(
            working_day_deadline,
            WorkingDayDeadlineInput(
                start=self._review_due, working_days=request.working_days, country=self._app.visitor.country
            ),
            start_to_close_timeout=options.LOCAL_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )
        self._deadlines["review"] = self._review_due
        self._deadlines.pop("review_grace", None)
        self._escalated, self._reminded_for, self._review_dirty = False, None, True
        await self._move_open_deadlines()
        await self._record(
            "review_deadline_extended", request.actor_id, request.justification, {"due": self._due_text()}
        )
        return self.status()

    @extend_review_deadline.validator
    def _validate_extension(self, request: ExtendReviewDeadlineInput) -> None:
        self._require_review_in_depth("extend_review_deadline")
        self._require_officer("extend_review_deadline", request.actor_id)

    @workflow.update(name="reopen")
    async def reopen(self, request: ReopenInput) -> ExchangeStatus:
        self._reopen = request
        await self._record("review_reopened", request.actor_id, request.justification)
        return self.status()

    @reopen.validator
    def _validate_reopen(self, request: ReopenInput) -> None:
        self._require_stage("reopen", {Stage.REJECTED})
        if self._rejected_at is None:
            raise refused(Refusal.WRONG_STAGE, "reopen: the appeal window has closed")
        self._require_officer("reopen", request.actor_id)
        if self._reopen is not None:
            raise refused(Refusal.ALREADY_RECORDED, "reopen: already reopened")

    def _require_review_in_depth(self, action: str) -> None:
        self._require_stage(action, {Stage.REVIEW})
        if self._one_reviewer:
            raise refused(
                Refusal.WRONG_STAGE, f"{action}: this exchange started before review in depth and has one reviewer"
            )
        self._require_board(action)

    def _require_board(self, action: str) -> None:
        if self._board is None:
            raise refused(Refusal.WRONG_STAGE, f"{action}: reviewers are being assigned; try again in a moment")

    def _require_no_pending_changes(self, action: str) -> None:
        if self._changes is not None:
            raise refused(
                Refusal.WRONG_STAGE, f"{action}: changes were requested; waiting for the applicant's amendment"
            )

    def _require_officer(self, action: str, actor_id: str) -> None:
        if actor_id not in self._officers:
            raise refused(
                Refusal.NOT_ALLOWED, f"actor_id: {actor_id} is not a programme officer of this partnership ({action})"
            )

    @workflow.update(name="sign_commitment")
    async def sign_commitment(self, signature: SignCommitmentInput) -> ExchangeStatus:
        self._signatures[signature.party] = signature.actor_id
        await self._record("commitment_signed", signature.actor_id, f"signed as {signature.party.value}")
        return self.status()

    @sign_commitment.validator
    def _validate_signature(self, signature: SignCommitmentInput) -> None:
        self._require_stage("sign_commitment", {Stage.AGREEMENT})
        if signature.party in self._signatures:
            raise refused(
                Refusal.ALREADY_RECORDED,
                f"party: {signature.party.value} already signed (by {self._signatures[signature.party]})",
            )
        self._require_party(signature.on_behalf_of, self._party_ids()[signature.party], f"party {signature.party}")
        # Four parties, four signatories: one person cannot sign for two of them (issue 11).
        other = next((p for p, actor in self._signatures.items() if actor == signature.actor_id), None)
        if other is not None:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {signature.actor_id} already signed for {other.value}; each party signs by its own person",
            )

    def _party_ids(self) -> dict[Party, str]:
        """R10's parties of this exchange: the organisation or partnership each one is."""
        app = self._app
        return {
            Party.HOST_ORGANISATION: app.host.organisation_id,
            Party.HOST_PARTNERSHIP: app.host_partnership_id,
            Party.VISITOR_ORGANISATION: app.visitor.organisation_id,
            Party.VISITOR_PARTNERSHIP: app.visitor_partnership_id,
        }

    @staticmethod
    def _require_party(on_behalf_of: str | None, expected: str, what: str) -> None:
        """A party's act counts only from someone acting for that party's own organisation or partnership."""
        if on_behalf_of is None:
            raise refused(
                Refusal.INVALID_INPUT,
                f"on_behalf_of: required: the organisation or partnership the actor represents ({what}: {expected})",
            )
        if on_behalf_of != expected:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"on_behalf_of: {on_behalf_of} is not the {what} of this exchange ({expected}); "
                "a party acts only for itself",
            )

    @workflow.update(name="confirm_match")
    async def confirm_match(self, confirmation: ConfirmMatchInput) -> ExchangeStatus:
        self._match[confirmation.side] = confirmation.actor_id
        await self._record("match_confirmed", confirmation.actor_id, f"confirmed by the {confirmation.side}")
        return self.status()

    @confirm_match.validator
    def _validate_match(self, confirmation: ConfirmMatchInput) -> None:
        self._require_stage("confirm_match", {Stage.AGREEMENT})
        if confirmation.side in self._match:
            raise refused(
                Refusal.ALREADY_RECORDED,
                f"side: the {confirmation.side} already confirmed (by {self._match[confirmation.side]})",
            )
        party = Party.HOST_ORGANISATION if confirmation.side == "host" else Party.VISITOR_ORGANISATION
        self._require_party(confirmation.on_behalf_of, self._party_ids()[party], f"{confirmation.side} organisation")

    @workflow.update(name="amend_dates")
    async def amend_dates(self, amendment: AmendDatesInput) -> ExchangeStatus:
        """Screen and price the new dates; move the hold in one ledger transaction, or change nothing."""
        self._amending = True
        try:
            amended = self._app.model_copy(update={"start_date": amendment.start_date, "end_date": amendment.end_date})
            screening = await workflow.execute_activity(
                screen_application,
                ScreenApplicationInput(application=amended, policy=self.policy, submitted_at=self._submitted_at()),
                start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
                retry_policy=options.COMPUTE_RETRY,
            )
            if not screening.eligible:
                reasons = "; ".join(f"{f.rule} ({f.field}): {f.message}" for f in screening.failures)
                raise refused(Refusal.AMENDMENT_REFUSED, f"amend_dates refused, the new dates break: {reasons}")
            pricing = await workflow.execute_activity(
                price_exchange,
                PriceExchangeInput(application=amended, policy=self.policy),
                start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
                retry_policy=options.COMPUTE_RETRY,
            )
            released_cents = await self._move_hold(pricing.amount_cents)
            previous = (self._app.start_date, self._app.end_date)
            self._app, self._grant_cents, self._dates_changed = amended, pricing.amount_cents, True
            await self._record(
                "dates_amended",
                amendment.actor_id,
                amendment.reason,
                {
                    "from": [str(d) for d in previous],
                    "to": [str(amendment.start_date), str(amendment.end_date)],
                    "grant_cents": pricing.amount_cents,
                    "breakdown": list(pricing.breakdown),
                },
            )
            if released_cents > 0:
                await self._announce_release(f"{self._app.application_id} amended to a smaller grant")
            return self.status()
        finally:
            self._amending = False

    async def _move_hold(self, amount_cents: int) -> int:
        """Re-hold for the new amount (void + hold in one transaction); return what went back to the budget."""
        if self._hold_id is None or amount_cents == self._held_cents:
            return 0
        result = await workflow.execute_activity_method(
            LedgerActivities.rehold_funds,
            ReholdFundsInput(
                hold_id=self._hold_id,
                amount_cents=amount_cents,
                idempotency_key=hold_key(self._app.application_id, self._hold_attempt + 1),
            ),
            **options.DATABASE,
        )
        if not result.held or result.transfer_id is None:
            raise refused(
                Refusal.AMENDMENT_REFUSED,
                f"amend_dates refused: the partnership's budget cannot cover {amount_cents} cents "
                f"(available {result.available_cents} cents beyond the current hold); dates and hold unchanged",
            )
        released = max(0, self._held_cents - amount_cents)
        self._hold_id, self._held_cents, self._hold_attempt = result.transfer_id, amount_cents, self._hold_attempt + 1
        return released

    @amend_dates.validator
    def _validate_amend_dates(self, amendment: AmendDatesInput) -> None:
        self._require_stage("amend_dates", {Stage.AGREEMENT, Stage.TRAVEL})
        if self._stay_started:
            raise refused(Refusal.WRONG_STAGE, "amend_dates: the stay has started; dates can no longer change")
        if self._amending:
            raise refused(Refusal.WRONG_STAGE, "amend_dates: another amendment is being applied")
        if amendment.start_date <= workflow.now().date():
            raise refused(Refusal.INVALID_INPUT, "start_date: a new stay must start after today")

    @workflow.update(name="confirm_attendance")
    async def confirm_attendance(self, attendance: ConfirmAttendanceInput) -> ExchangeStatus:
        self._attendance = attendance
        await self._record(
            "attendance_confirmed",
            attendance.actor_id,
            f"shortened to {attendance.actual_end_date}" if attendance.actual_end_date else "full stay",
        )
        return self.status()

    @confirm_attendance.validator
    def _validate_attendance(self, attendance: ConfirmAttendanceInput) -> None:
        self._require_stage("confirm_attendance", {Stage.TRAVEL, Stage.REPORTING})
        if not self._stay_started:
            raise refused(Refusal.WRONG_STAGE, "confirm_attendance: the stay has not started yet")
        if self._attendance is not None or self._no_show is not None:
            raise refused(Refusal.ALREADY_RECORDED, "confirm_attendance: attendance was already recorded")
        end = attendance.actual_end_date
        if end is not None and not self._app.start_date <= end <= self._app.end_date:
            raise refused(
                Refusal.INVALID_INPUT, f"actual_end_date: must fall within {self._app.start_date}..{self._app.end_date}"
            )

    @workflow.update(name="report_no_show")
    async def report_no_show(self, report: ReportNoShowInput) -> ExchangeStatus:
        self._no_show = report
        await self._record("no_show_reported", report.actor_id, report.reason)
        return self.status()

    @report_no_show.validator
    def _validate_no_show(self, report: ReportNoShowInput) -> None:
        self._require_stage("report_no_show", {Stage.TRAVEL})
        if not self._stay_started:
            raise refused(
                Refusal.WRONG_STAGE, "report_no_show: the stay has not started yet (the visitor may still withdraw)"
            )
        if self._attendance is not None or self._no_show is not None:
            raise refused(Refusal.ALREADY_RECORDED, "report_no_show: attendance was already recorded")

    @workflow.update(name="submit_report")
    async def submit_report(self, report: SubmitReportInput) -> ExchangeStatus:
        if workflow.patched(PATCH_EVIDENCE_VERIFIED):
            self._report_pending = True
            try:
                check = await workflow.execute_activity_method(
                    EvidenceActivities.verify_evidence,
                    VerifyEvidenceInput(application_id=self._app.application_id, items=report.evidence),
                    **options.DATABASE,
                )
            finally:
                self._report_pending = False
            if not check.ok:
                problems = [f"{i.name} ({i.sha256[:12]}…) was never uploaded for this exchange" for i in check.missing]
                problems += [m.message for m in check.mismatched]
                raise refused(Refusal.EVIDENCE_REFUSED, f"evidence: {'; '.join(problems)}")
        self._report = report
        await self._record(
            "report_submitted", report.actor_id, report.summary, {"evidence": [e.model_dump() for e in report.evidence]}
        )
        return self.status()

    @submit_report.validator
    def _validate_report_submission(self, report: SubmitReportInput) -> None:
        self._require_stage("submit_report", {Stage.REPORTING})
        if self._report_pending:
            raise refused(Refusal.WRONG_STAGE, "submit_report: another report is being checked")
        if self._report is not None:
            raise refused(Refusal.ALREADY_RECORDED, "submit_report: a report is already waiting for validation")
        actual_end = report.actual_end_date
        if actual_end is not None and not self._app.start_date <= actual_end <= self._app.end_date:
            raise refused(
                Refusal.INVALID_INPUT,
                f"actual_end_date: must fall within the planned stay {self._app.start_date}..{self._app.end_date}",
            )

    @workflow.update(name="validate_report")
    async def validate_report(self, decision: ValidateReportInput) -> ExchangeStatus:
        self._report_decision = decision
        await self._record(
            "report_validated", decision.actor_id, decision.reasons, {"decision": decision.decision.value}
        )
        return self.status()

    @validate_report.validator
    def _validate_report_decision(self, decision: ValidateReportInput) -> None:
        self._require_stage("validate_report", {Stage.REPORTING})
        if self._report is None:
            raise refused(Refusal.WRONG_STAGE, "validate_report: no report has been submitted yet")
        if self._report_decision is not None:
            raise refused(Refusal.ALREADY_RECORDED, "validate_report: this report was already validated")
        if decision.actor_id == self._report.actor_id:
            raise refused(
                Refusal.NOT_ALLOWED, "actor_id: the person who submitted the report cannot validate it (four-eyes)"
            )
        self._require_party(decision.on_behalf_of, self._app.visitor_partnership_id, "visitor partnership (VOP)")

    @workflow.update(name="withdraw")
    async def withdraw(self, request: WithdrawInput) -> ExchangeStatus:
        self._stop = _Ended(Stage.WITHDRAWN, request.reason, request.actor_id)
        return self.status()

    @withdraw.validator
    def _validate_withdraw(self, request: WithdrawInput) -> None:
        self._require_stage("withdraw", WITHDRAWABLE_STAGES)
        if self._stay_started:
            raise refused(Refusal.WRONG_STAGE, "withdraw: the stay has started; only an officer can cancel now")
        self._require_not_stopping()

    @workflow.update(name="cancel")
    async def cancel(self, request: CancelInput) -> ExchangeStatus:
        self._stop = _Ended(Stage.CANCELLED, request.reason, request.actor_id)
        return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self._require_stage("cancel", CANCELLABLE_STAGES)
        self._require_not_stopping()

    @workflow.signal(name="confirm_payment")
    async def confirm_payment(self, payload: RawValue) -> None:
        """Finance's confirmation (ConfirmPaymentInput). Decoded here, not by the SDK, so that one which
        does not parse is recorded as ignored instead of being dropped unseen."""
        converter = workflow.payload_converter()
        if not workflow.patched(PATCH_EDGE_CHECKS):
            legacy = converter.from_payload(payload.payload, _LegacyConfirmPayment)
            if self._payment_confirmation is None:  # a repeated confirmation changes nothing
                self._payment_confirmation = _Confirmation(
                    legacy.payment_reference, legacy.confirmed_by, workflow.now()
                )
            return
        try:
            confirmation: ConfirmPaymentInput = converter.from_payload(payload.payload, ConfirmPaymentInput)
        except ApplicationError as error:
            await self._record("payment_confirmation_ignored", SYSTEM_ACTOR, error.message, {"refusal": error.type})
            return
        problem = self._confirmation_problem(confirmation)
        if problem is None:
            self._payment_confirmation = _Confirmation(
                confirmation.payment_reference, confirmation.confirmed_by, workflow.now()
            )
        elif problem:
            await self._record(
                "payment_confirmation_ignored",
                confirmation.confirmed_by,
                problem,
                {"confirmation": confirmation.model_dump(mode="json"), "stage": self._stage.value},
            )

    def _confirmation_problem(self, confirmation: ConfirmPaymentInput) -> str | None:
        """Why a confirmation cannot count now (None: it counts; "": a repeat of the accepted one, nothing to say).

        Money moves only in order: a confirmation counts only in PAYMENT, for this exchange's order and
        its amount, and is never remembered for a later stage."""
        accepted = self._payment_confirmation
        if accepted is not None:
            if accepted.payment_reference == confirmation.payment_reference:
                return ""
            return f"payment_reference: already confirmed as {accepted.payment_reference!r}"
        if self._stage is not Stage.PAYMENT or self._closing:
            return f"stage: a confirmation counts only in PAYMENT; this exchange is in {self._stage.value}"
        if self._ordered is None:
            return "payment_order_id: no payment order has been issued yet"
        order_id, amount_cents = self._ordered
        if confirmation.payment_order_id != order_id:
            return f"payment_order_id: {confirmation.payment_order_id!r} is not this exchange's order {order_id!r}"
        if confirmation.amount_cents != amount_cents:
            return f"amount_cents: {confirmation.amount_cents} does not match the order's {amount_cents}"
        return None

    @workflow.signal(name="funds_held")
    def funds_held(self, held: FundsHeldInput) -> None:
        if self._funds_held is None:
            self._funds_held = held

    @workflow.signal(name="offer_funds")
    def offer_funds(self, offer: OfferFundsInput) -> None:
        if offer.partnership_id == self._app.visitor_partnership_id:
            self._funds_offered = True

    def _require_stage(self, action: str, allowed: frozenset[Stage] | set[Stage]) -> None:
        if self._closing:
            raise refused(Refusal.WRONG_STAGE, f"{action}: the exchange is closing and accepts no more decisions")
        if self._stage not in allowed:
            names = ", ".join(sorted(s.value for s in allowed))
            raise refused(
                Refusal.WRONG_STAGE, f"{action}: not allowed in stage {self._stage.value} (allowed in: {names})"
            )

    def _require_not_stopping(self) -> None:
        if self._stop is not None:
            raise refused(Refusal.WRONG_STAGE, f"the exchange is already being closed as {self._stop.stage.value}")
