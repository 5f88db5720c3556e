"""REPORTING (R11): the closing report with its evidence, validated by the visitor's partnership (VOP).

The report is due `report_days` after the stay, with reminders; one not accepted by then FORFEITS the
exchange (its hold is voided). A report's evidence must have been uploaded for this exchange (checked by
`verify_evidence`, which also counts the VOP's validation deadline and writes what the workflow recorded
since its last write, in one transaction). The VOP accepts it, or returns it with reasons and the visitor
may submit again until the deadline; a validation later than its deadline is an alert, and a report never
validated ends the exchange CANCELLED. Messages: submit_report, validate_report.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.reporting import EvidenceActivities
    from schemas.errors import Refusal, refused
    from schemas.events import DeadlineKey, EventName
    from schemas.exchange import ReportDecision, SubmitReportInput, ValidateReportInput
    from schemas.reporting import VerifyEvidenceInput
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.agreement import require_party
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange


class ReportingStage:
    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.report: SubmitReportInput | None = None
        self.decision: ValidateReportInput | None = None
        self.checking = False
        self.validation_due: datetime | None = None

    async def run(self, stay_ended: datetime) -> SubmitReportInput:
        """Until a report is accepted: returns it (PAYMENT prices the stay it reports)."""
        ex = self.ex
        rules = ex.policy.deadlines
        due = stay_ended + timedelta(days=rules.report_days)
        ex.deadlines[DeadlineKey.REPORT] = due
        ex.enter(Stage.REPORTING, SYSTEM_ACTOR)
        reminders = [stay_ended + timedelta(days=d) for d in rules.report_reminder_days]
        while True:
            for reminder_at in [r for r in reminders if r > workflow.now()]:
                if await ex.wait_until(lambda: self.report is not None, reminder_at):
                    break
                ex.record(EventName.REPORT_REMINDER, SYSTEM_ACTOR, f"report due by {due.isoformat()}")
            if not await ex.wait_until(lambda: self.report is not None, due):
                raise Ended(Stage.FORFEITED, f"no accepted report by {due.isoformat()}")
            decision_due = self.validation_due or await ex.working_day_deadline(rules.review_working_days)
            ex.deadlines[DeadlineKey.REPORT_VALIDATION] = decision_due
            if not await ex.wait_until(lambda: self.decision is not None, decision_due):
                ex.alert(EventName.REPORT_VALIDATION_LATE, f"report not validated by {decision_due.isoformat()}")
                last_due = decision_due + timedelta(days=rules.payment_confirmation_max_days)
                if not await ex.wait_until(lambda: self.decision is not None, last_due):
                    raise Ended(Stage.CANCELLED, f"the report was never validated (by {last_due.isoformat()})")
            decision = self.decision
            assert decision is not None
            assert self.report is not None
            if decision.decision is ReportDecision.ACCEPT:
                return self.report
            # Returned for resubmission: the visitor may submit again until the report deadline.
            self.report, self.decision, self.validation_due = None, None, None
            ex.deadlines.pop(DeadlineKey.REPORT_VALIDATION, None)

    # --- messages ----------------------------------------------------------------------------------------

    async def submit_report(self, report: SubmitReportInput) -> None:
        ex = self.ex
        self.checking = True
        try:
            async with ex.write_lock:
                check = await workflow.execute_activity_method(
                    EvidenceActivities.verify_evidence,
                    VerifyEvidenceInput(
                        application_id=ex.application_id,
                        items=report.evidence,
                        projection=ex.take_batch(),
                        validation_working_days=ex.policy.deadlines.review_working_days,
                        country=ex.app.visitor.country,
                        now=workflow.now(),
                    ),
                    **options.DATABASE,
                )
        finally:
            self.checking = False
        if not check.ok:
            problems = [f"{i.name} ({i.sha256[:12]}…) was never uploaded for this exchange" for i in check.missing]
            problems += [m.message for m in check.mismatched]
            raise refused(Refusal.EVIDENCE_REFUSED, f"evidence: {'; '.join(problems)}")
        self.report, self.validation_due = report, check.validation_due
        ex.record(
            EventName.REPORT_SUBMITTED,
            report.actor_id,
            report.summary,
            {"evidence": [e.model_dump() for e in report.evidence]},
        )

    def validate_report(self, decision: ValidateReportInput) -> None:
        self.decision = decision
        self.ex.record(
            EventName.REPORT_VALIDATED, decision.actor_id, decision.reasons, {"decision": decision.decision.value}
        )

    def validate_submission(self, report: SubmitReportInput) -> None:
        ex = self.ex
        ex.require_stage("submit_report", {Stage.REPORTING})
        if self.checking:
            raise refused(Refusal.WRONG_STAGE, "submit_report: another report is being checked")
        if self.report is not None:
            raise refused(Refusal.ALREADY_RECORDED, "submit_report: a report is already waiting for validation")
        actual_end = report.actual_end_date
        if actual_end is not None and not ex.app.start_date <= actual_end <= ex.app.end_date:
            raise refused(
                Refusal.INVALID_INPUT,
                f"actual_end_date: must fall within the planned stay {ex.app.start_date}..{ex.app.end_date}",
            )

    def validate_decision(self, decision: ValidateReportInput) -> None:
        ex = self.ex
        ex.require_stage("validate_report", {Stage.REPORTING})
        if self.report is None:
            raise refused(Refusal.WRONG_STAGE, "validate_report: no report has been submitted yet")
        if self.decision is not None:
            raise refused(Refusal.ALREADY_RECORDED, "validate_report: this report was already validated")
        if decision.actor_id == self.report.actor_id:
            raise refused(
                Refusal.NOT_ALLOWED, "actor_id: the person who submitted the report cannot validate it (four-eyes)"
            )
        require_party(decision.on_behalf_of, ex.app.visitor_partnership_id, "visitor partnership (VOP)")
