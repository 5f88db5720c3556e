"""TRAVEL: durable timers to the start and the end of the stay; dates amended before it starts; attendance.

Dates may be amended until the stay starts (`amend_dates`: screened and priced again; the hold moves in one
ledger transaction, or nothing changes), and the start timer is set again. Once the stay has started the
host confirms attendance (possibly a shortened stay) or reports a no-show, which CANCELS the exchange.
Messages: amend_dates, confirm_attendance, report_no_show.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.funding import LedgerActivities
    from activities.pricing import price_exchange
    from activities.screening import screen_application
    from schemas.errors import Refusal, refused
    from schemas.events import DeadlineKey, EventName
    from schemas.exchange import AmendDatesInput, ConfirmAttendanceInput, ReportNoShowInput
    from schemas.funding import PriceExchangeInput, ReholdFundsInput
    from schemas.ids import hold_key
    from schemas.screening import ScreenApplicationInput
    from schemas.stages import Stage
    from workflows import options
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange


class TravelStage:
    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.stay_started = False
        self.dates_changed = False
        self.amending = False
        self.hold_attempt = 1
        self.attendance: ConfirmAttendanceInput | None = None
        self.no_show: ReportNoShowInput | None = None

    async def run(self) -> None:
        ex = self.ex
        ex.enter(Stage.TRAVEL, SYSTEM_ACTOR)
        # Dates may be amended until the stay starts: then the timer is set again for the new start.
        while True:
            self.dates_changed = False
            starts_at = ex.midnight(ex.app.start_date)
            ex.deadlines[DeadlineKey.STAY_STARTS] = starts_at
            ex.deadlines[DeadlineKey.STAY_ENDS] = self.stay_ends_at()
            await ex.wait_until(lambda: self.dates_changed, starts_at)
            if not self.dates_changed:
                break
        self.stay_started = True
        ex.record(EventName.STAY_STARTED, SYSTEM_ACTOR)
        await ex.wait_until(lambda: self.no_show is not None, self.stay_ends_at())
        if self.no_show is not None:
            raise Ended(Stage.CANCELLED, f"no-show reported by the host: {self.no_show.reason}", self.no_show.actor_id)
        ex.record(EventName.STAY_ENDED, SYSTEM_ACTOR)

    def stay_ends_at(self) -> datetime:
        return self.ex.midnight(self.ex.app.end_date + timedelta(days=1))

    def actual_end_date(self) -> date | None:
        return self.attendance.actual_end_date if self.attendance else None

    # --- messages ----------------------------------------------------------------------------------------

    async def amend_dates(self, amendment: AmendDatesInput) -> int:
        """Screen and price the new dates; move the hold in one ledger transaction, or change nothing.
        Returns the cents that went back to the budget (the caller tells the waitlist)."""
        ex = self.ex
        self.amending = True
        try:
            amended = ex.app.model_copy(update={"start_date": amendment.start_date, "end_date": amendment.end_date})
            screening = await workflow.execute_activity(
                screen_application,
                ScreenApplicationInput(application=amended, policy=ex.policy, submitted_at=ex.submitted_at()),
                start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
                retry_policy=options.COMPUTE_RETRY,
            )
            if not screening.eligible:
                reasons = "; ".join(f"{f.rule} ({f.field}): {f.message}" for f in screening.failures)
                raise refused(Refusal.AMENDMENT_REFUSED, f"amend_dates refused, the new dates break: {reasons}")
            pricing = await workflow.execute_activity(
                price_exchange,
                PriceExchangeInput(application=amended, policy=ex.policy),
                start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
                retry_policy=options.COMPUTE_RETRY,
            )
            released_cents = await self._move_hold(pricing.amount_cents)
            previous = (ex.app.start_date, ex.app.end_date)
            ex.app, ex.grant_cents, self.dates_changed = amended, pricing.amount_cents, True
            if ex.stage is Stage.TRAVEL:  # the timers follow at once (the stay loop sets them again too)
                ex.deadlines[DeadlineKey.STAY_STARTS] = ex.midnight(amended.start_date)
                ex.deadlines[DeadlineKey.STAY_ENDS] = self.stay_ends_at()
            ex.record(
                EventName.DATES_AMENDED,
                amendment.actor_id,
                amendment.reason,
                {
                    "from": [str(d) for d in previous],
                    "to": [str(amendment.start_date), str(amendment.end_date)],
                    "grant_cents": pricing.amount_cents,
                    "breakdown": list(pricing.breakdown),
                },
            )
            return released_cents
        finally:
            self.amending = False

    async def _move_hold(self, amount_cents: int) -> int:
        """Re-hold for the new amount (void + hold in one transaction); return what went back to the budget."""
        ex = self.ex
        if ex.hold_id is None or amount_cents == ex.held_cents:
            return 0
        result = await workflow.execute_activity_method(
            LedgerActivities.rehold_funds,
            ReholdFundsInput(
                hold_id=ex.hold_id,
                amount_cents=amount_cents,
                idempotency_key=hold_key(ex.application_id, self.hold_attempt + 1),
            ),
            **options.DATABASE,
        )
        if not result.held or result.transfer_id is None:
            raise refused(
                Refusal.AMENDMENT_REFUSED,
                f"amend_dates refused: the partnership's budget cannot cover {amount_cents} cents "
                f"(available {result.available_cents} cents beyond the current hold); dates and hold unchanged",
            )
        released = max(0, ex.held_cents - amount_cents)
        ex.hold_id, ex.held_cents, self.hold_attempt = result.transfer_id, amount_cents, self.hold_attempt + 1
        return released

    def confirm_attendance(self, attendance: ConfirmAttendanceInput) -> None:
        self.attendance = attendance
        reason = f"shortened to {attendance.actual_end_date}" if attendance.actual_end_date else "full stay"
        self.ex.record(EventName.ATTENDANCE_CONFIRMED, attendance.actor_id, reason)

    def report_no_show(self, report: ReportNoShowInput) -> None:
        self.no_show = report
        self.ex.record(EventName.NO_SHOW_REPORTED, report.actor_id, report.reason)

    def validate_amend_dates(self, amendment: AmendDatesInput) -> None:
        self.ex.require_stage("amend_dates", {Stage.AGREEMENT, Stage.TRAVEL})
        if self.stay_started:
            raise refused(Refusal.WRONG_STAGE, "amend_dates: the stay has started; dates can no longer change")
        if self.amending:
            raise refused(Refusal.WRONG_STAGE, "amend_dates: another amendment is being applied")
        if amendment.start_date <= workflow.now().date():
            raise refused(Refusal.INVALID_INPUT, "start_date: a new stay must start after today")

    def validate_attendance(self, attendance: ConfirmAttendanceInput) -> None:
        self.ex.require_stage("confirm_attendance", {Stage.TRAVEL, Stage.REPORTING})
        if not self.stay_started:
            raise refused(Refusal.WRONG_STAGE, "confirm_attendance: the stay has not started yet")
        if self.attendance is not None or self.no_show is not None:
            raise refused(Refusal.ALREADY_RECORDED, "confirm_attendance: attendance was already recorded")
        end = attendance.actual_end_date
        app = self.ex.app
        if end is not None and not app.start_date <= end <= app.end_date:
            raise refused(Refusal.INVALID_INPUT, f"actual_end_date: must fall within {app.start_date}..{app.end_date}")

    def validate_no_show(self, report: ReportNoShowInput) -> None:
        self.ex.require_stage("report_no_show", {Stage.TRAVEL})
        if not self.stay_started:
            raise refused(
                Refusal.WRONG_STAGE, "report_no_show: the stay has not started yet (the visitor may still withdraw)"
            )
        if self.attendance is not None or self.no_show is not None:
            raise refused(Refusal.ALREADY_RECORDED, "report_no_show: attendance was already recorded")
