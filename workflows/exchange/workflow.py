"""The Exchange workflow: one ClusterXchange exchange from application to payment.

`run()` reads as the lifecycle table of ARCHITECTURE.md; each stage lives in its own module with its
state, its waits and the bodies of its messages (submission, review, funding, agreement, travel,
reporting, payment, closing); this class holds the thin message shims and the `status` query.

Stages: SUBMITTED -> SCREENING -> REVIEW -> FUNDING (-> WAITLISTED) -> AGREEMENT -> TRAVEL -> REPORTING ->
PAYMENT -> PAID, or a terminal INELIGIBLE, REJECTED, EXPIRED, LAPSED, WITHDRAWN, CANCELLED or FORFEITED.
Any hold still pending when the exchange ends is voided.

Before anything is touched (docs/adr/0011-trust-at-the-edges.md): the start input was decoded strictly
(schemas/converter.py; a bad one fails the run with InvalidInput), the workflow id must be
`exchange:<application_id>`, `submitted_at` not after the start, the policy version on file, and the
application id is claimed for this run (a second run under a closed exchange's id fails with
DuplicateApplication, having changed nothing).

Messages:
- updates (validated; a refused update leaves no trace and fails with a schemas.errors.Refusal type;
  an accepted one is answered once it is recorded in state, its effects written with the stage's next
  unit of work): submit_review, declare_conflict, request_changes, amend_application, reassign,
  override, extend_review_deadline, reopen, confirm_match, sign_commitment, amend_dates,
  confirm_attendance, report_no_show, submit_report, validate_report, withdraw, cancel;
- signals: confirm_payment (finance; counts only in PAYMENT for this exchange's order and amount, any
  other is recorded as ignored), funds_held (the partnership's Funds workflow placed the hold);
- queries: status; application (the application as amended).

Deadlines (policy data, counted from when each step starts): review (working days, then escalation to an
officer, then reassignment and finally a lapse); appeal; waitlist; signatures (with reminders); travel
timers to the start and end of the stay; report (with reminders); report validation (an alert, then a
cancellation); payment SLA (an alert) and a last limit on waiting for finance.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from schemas.errors import Refusal, refused
    from schemas.exchange import (
        AmendDatesInput,
        ApplicationInput,
        CancelInput,
        ConfirmAttendanceInput,
        ConfirmMatchInput,
        ExchangeOutcome,
        ExchangeStatus,
        ReportNoShowInput,
        SignCommitmentInput,
        SubmitReportInput,
        SubmitReviewInput,
        ValidateReportInput,
        WithdrawInput,
    )
    from schemas.funding import FundsHeldInput
    from schemas.review import (
        AmendApplicationInput,
        DeclareConflictInput,
        ExtendReviewDeadlineInput,
        OverrideInput,
        ReassignInput,
        ReopenInput,
        RequestChangesInput,
    )
    from schemas.stages import CANCELLABLE_STAGES, WITHDRAWABLE_STAGES, Stage
    from workflows.exchange.agreement import AgreementStage
    from workflows.exchange.closing import close
    from workflows.exchange.context import Ended, Exchange
    from workflows.exchange.funding import FundingStage
    from workflows.exchange.payment import PaymentStage
    from workflows.exchange.reporting import ReportingStage
    from workflows.exchange.review import ReviewStage
    from workflows.exchange.submission import admit
    from workflows.exchange.travel import TravelStage


@workflow.defn(name="Exchange")
class ExchangeWorkflow:
    """One exchange's life; see the module docstring for stages, messages and deadlines."""

    @workflow.init
    def __init__(self, application: ApplicationInput) -> None:
        self.ex = Exchange(application)
        self.review = ReviewStage(self.ex)
        self.funding = FundingStage(self.ex)
        self.agreement = AgreementStage(self.ex)
        self.travel = TravelStage(self.ex)
        self.reporting = ReportingStage(self.ex)
        self.payment = PaymentStage(self.ex, self.funding)

    @workflow.run
    async def run(self, application: ApplicationInput) -> ExchangeOutcome:
        try:
            admitted = await admit(self.ex)  # SUBMITTED, SCREENING, REVIEW with its first reviewers
            assert admitted.review_due is not None
            assert admitted.assignment is not None
            assignment = admitted.assignment
            await self.review.run(admitted.review_due, assignment.assigned, assignment.shortfall, assignment.officers)
            await self.funding.run()  # FUNDING (WAITLISTED), and AGREEMENT entered once held
            await self.agreement.run()
            await self.travel.run()
            report = await self.reporting.run(stay_ended=self.travel.stay_ends_at())
            await self.payment.run(report.actual_end_date or self.travel.actual_end_date())
        except Ended as ended:
            return await close(self.ex, ended, self.review, self.funding, self.payment)
        paid = Ended(Stage.PAID, "payment confirmed by finance", self.payment.confirmed_by())
        return await close(self.ex, paid, self.review, self.funding, self.payment)

    @workflow.query(name="application")
    def application(self) -> ApplicationInput:
        """The application as it stands now (amendments applied): what reviewers read. A query changes
        no history, so adding it needs no patch."""
        return self.ex.app

    @workflow.query(name="status")
    def status(self) -> ExchangeStatus:
        ex = self.ex
        travel, reporting, payment = self.travel, self.reporting, self.payment
        return ExchangeStatus(
            application_id=ex.application_id,
            stage=ex.stage,
            partnership_id=ex.app.visitor_partnership_id,
            policy_version=ex.policy_or_none.version if ex.policy_or_none else None,
            grant_cents=ex.grant_cents,
            held_cents=ex.held_cents,
            paid_cents=ex.paid_cents,
            hold_transfer_id=ex.hold_id,
            deadlines={key.value: due for key, due in ex.deadlines.items()},
            signatures=dict(self.agreement.signatures),
            parties=self.agreement.parties(),
            match_confirmed_by=dict(self.agreement.match),
            start_date=ex.app.start_date,
            end_date=ex.app.end_date,
            stay_started=travel.stay_started,
            attendance_confirmed_by=travel.attendance.actor_id if travel.attendance else None,
            actual_end_date=travel.actual_end_date(),
            report_submitted=reporting.report is not None and reporting.decision is None,
            screening_failures=ex.screening_failures,
            payment_order_id=payment.payment_order_id,
            payment_reference=payment.confirmation.payment_reference if payment.confirmation else None,
            alerts=tuple(ex.alerts),
            review=self.review.state(),
            history=tuple(ex.history),
        )

    async def _settled(self, validate: Callable[[], None]) -> None:
        """A message may be accepted while an activity enters its stage (REVIEW at admission, AGREEMENT at
        funding): people see the new stage as soon as it commits. It is applied once the stage has settled,
        and validated again then (the stage may have gone another way: a refusal fails the update)."""
        if self.ex.entering is not None:
            await self.ex.settled()
            validate()

    # --- REVIEW --------------------------------------------------------------------------------------------

    @workflow.update(name="submit_review")
    async def submit_review(self, decision: SubmitReviewInput) -> ExchangeStatus:
        await self._settled(lambda: self.review.validate_review(decision))
        self.review.submit_review(decision)
        return self.status()

    @submit_review.validator
    def _validate_review(self, decision: SubmitReviewInput) -> None:
        self.review.validate_review(decision)

    @workflow.update(name="declare_conflict")
    async def declare_conflict(self, request: DeclareConflictInput) -> ExchangeStatus:
        await self._settled(lambda: self.review.validate_conflict(request))
        self.review.declare_conflict(request)
        await self.ex.write()  # need to know: the recusal hides the exchange from its reviewer before we answer
        return self.status()

    @declare_conflict.validator
    def _validate_conflict(self, request: DeclareConflictInput) -> None:
        self.review.validate_conflict(request)

    @workflow.update(name="request_changes")
    async def request_changes(self, request: RequestChangesInput) -> ExchangeStatus:
        await self._settled(lambda: self.review.validate_request_changes(request))
        self.review.request_changes(request)
        return self.status()

    @request_changes.validator
    def _validate_request_changes(self, request: RequestChangesInput) -> None:
        self.review.validate_request_changes(request)

    @workflow.update(name="amend_application")
    def amend_application(self, amendment: AmendApplicationInput) -> ExchangeStatus:
        self.review.amend_application(amendment)
        return self.status()

    @amend_application.validator
    def _validate_amendment(self, amendment: AmendApplicationInput) -> None:
        self.review.validate_amendment(amendment)

    @workflow.update(name="reassign")
    async def reassign(self, request: ReassignInput) -> ExchangeStatus:
        self.review.reassign(request)
        await self.ex.write()  # need to know: the replaced reviewer loses the exchange before we answer
        return self.status()

    @reassign.validator
    def _validate_reassign(self, request: ReassignInput) -> None:
        self.review.validate_reassign(request)

    @workflow.update(name="override")
    def override(self, request: OverrideInput) -> ExchangeStatus:
        self.review.override(request)
        return self.status()

    @override.validator
    def _validate_override(self, request: OverrideInput) -> None:
        self.review.validate_override(request)

    @workflow.update(name="extend_review_deadline")
    async def extend_review_deadline(self, request: ExtendReviewDeadlineInput) -> ExchangeStatus:
        await self.review.extend_review_deadline(request)
        return self.status()

    @extend_review_deadline.validator
    def _validate_extension(self, request: ExtendReviewDeadlineInput) -> None:
        self.review.validate_extension(request)

    @workflow.update(name="reopen")
    def reopen(self, request: ReopenInput) -> ExchangeStatus:
        self.review.reopen(request)
        return self.status()

    @reopen.validator
    def _validate_reopen(self, request: ReopenInput) -> None:
        self.review.validate_reopen(request)

    # --- AGREEMENT -----------------------------------------------------------------------------------------

    @workflow.update(name="sign_commitment")
    async def sign_commitment(self, signature: SignCommitmentInput) -> ExchangeStatus:
        await self._settled(lambda: self.agreement.validate_signature(signature))
        self.agreement.sign(signature)
        return self.status()

    @sign_commitment.validator
    def _validate_signature(self, signature: SignCommitmentInput) -> None:
        self.agreement.validate_signature(signature)

    @workflow.update(name="confirm_match")
    async def confirm_match(self, confirmation: ConfirmMatchInput) -> ExchangeStatus:
        await self._settled(lambda: self.agreement.validate_match(confirmation))
        self.agreement.confirm_match(confirmation)
        return self.status()

    @confirm_match.validator
    def _validate_match(self, confirmation: ConfirmMatchInput) -> None:
        self.agreement.validate_match(confirmation)

    # --- TRAVEL --------------------------------------------------------------------------------------------

    @workflow.update(name="amend_dates")
    async def amend_dates(self, amendment: AmendDatesInput) -> ExchangeStatus:
        released_cents = await self.travel.amend_dates(amendment)
        if released_cents > 0:
            await self.funding.announce_release(f"{self.ex.application_id} amended to a smaller grant")
        return self.status()

    @amend_dates.validator
    def _validate_amend_dates(self, amendment: AmendDatesInput) -> None:
        self.travel.validate_amend_dates(amendment)

    @workflow.update(name="confirm_attendance")
    def confirm_attendance(self, attendance: ConfirmAttendanceInput) -> ExchangeStatus:
        self.travel.confirm_attendance(attendance)
        return self.status()

    @confirm_attendance.validator
    def _validate_attendance(self, attendance: ConfirmAttendanceInput) -> None:
        self.travel.validate_attendance(attendance)

    @workflow.update(name="report_no_show")
    def report_no_show(self, report: ReportNoShowInput) -> ExchangeStatus:
        self.travel.report_no_show(report)
        return self.status()

    @report_no_show.validator
    def _validate_no_show(self, report: ReportNoShowInput) -> None:
        self.travel.validate_no_show(report)

    # --- REPORTING -----------------------------------------------------------------------------------------

    @workflow.update(name="submit_report")
    async def submit_report(self, report: SubmitReportInput) -> ExchangeStatus:
        await self.reporting.submit_report(report)
        return self.status()

    @submit_report.validator
    def _validate_report_submission(self, report: SubmitReportInput) -> None:
        self.reporting.validate_submission(report)

    @workflow.update(name="validate_report")
    def validate_report(self, decision: ValidateReportInput) -> ExchangeStatus:
        self.reporting.validate_report(decision)
        return self.status()

    @validate_report.validator
    def _validate_report_decision(self, decision: ValidateReportInput) -> None:
        self.reporting.validate_decision(decision)

    # --- any stage: leaving early --------------------------------------------------------------------------

    @workflow.update(name="withdraw")
    def withdraw(self, request: WithdrawInput) -> ExchangeStatus:
        self.ex.stop = Ended(Stage.WITHDRAWN, request.reason, request.actor_id)
        return self.status()

    @withdraw.validator
    def _validate_withdraw(self, request: WithdrawInput) -> None:
        self.ex.require_stage("withdraw", WITHDRAWABLE_STAGES)
        if self.travel.stay_started:
            raise refused(Refusal.WRONG_STAGE, "withdraw: the stay has started; only an officer can cancel now")
        self.ex.require_not_stopping()

    @workflow.update(name="cancel")
    def cancel(self, request: CancelInput) -> ExchangeStatus:
        self.ex.stop = Ended(Stage.CANCELLED, request.reason, request.actor_id)
        return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self.ex.require_stage("cancel", CANCELLABLE_STAGES)
        self.ex.require_not_stopping()

    # --- signals -------------------------------------------------------------------------------------------

    @workflow.signal(name="confirm_payment")
    async def confirm_payment(self, payload: RawValue) -> None:
        await self.payment.on_confirmation(payload)

    @workflow.signal(name="funds_held")
    def funds_held(self, held: FundsHeldInput) -> None:
        self.funding.on_funds_held(held)
