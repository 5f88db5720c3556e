"""The simulation's people as workflows on the time-skipping server (issue 17; docs/adr/0027-programme-simulation.md).

`SimulatedApplicant`: one per application. It sleeps until the application arrives, starts the real Exchange
workflow, then looks at the read model each time its plan says someone acts (or the next morning, or a week
later while nothing is theirs to do) and sends what that person would: reviews, signatures, attendance, a
withdrawal or a no-show, the report, the VOP's validation, finance's payment confirmation. Every wait is a
durable timer, so the server skips the time between; the activities it calls (workers/simulation/people.py)
do the talking, by name, so this module stays light in the sandbox.

`ProgrammeClock`: sleeps until the programme's horizon; the driver awaits it, which lets the server skip time.
Deterministic (STYLE.md): no I/O, no clock but `workflow.now()`, no randomness (the plan was drawn outside).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.simulation import ActorOutcome, ApplicantPlan, ClockInput
    from schemas.stages import TERMINAL_STAGES, Stage
    from workers.simulation.contract import DecideAll, DecideInput, DecideResult, Look, PayInput, ReportInput

T = TypeVar("T")
ACTIVITY_TIMEOUT = timedelta(seconds=60)
ACTIVITY_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1))
MAX_STEPS = 400  # looks per application: far more than a life needs; the limit stops a broken run
# Each kind of decision has its own hour of the day (UTC). The engine's deadlines fall at the instant of the
# decision that set them plus whole days (and a few milliseconds of processing), so a decision made at another
# hour never lands on a deadline of its own exchange: the time-skipping server fails a workflow task that cancels
# a timer firing at that very moment ("invalid history builder state for action"), and the update riding on that
# task is never answered (docs/adr/0027-programme-simulation.md). Looks only read, at any hour.
LOOK_HOUR = 7
HOURS = {"review": 9, "agree": 10, "travel": 11, "report": 13, "validate": 14, "pay": 15}
WEEK = timedelta(days=7)
DAY = timedelta(days=1)


@workflow.defn(name="ProgrammeClock")
class ProgrammeClock:
    @workflow.run
    async def run(self, clock: ClockInput) -> None:
        await workflow.sleep(max(timedelta(0), clock.until - workflow.now()))


@workflow.defn(name="SimulatedApplicant")
class SimulatedApplicant:
    """One application's people. Stages are read, never assumed; a refused decision is noted and the next look
    decides what follows (the exchange may have moved on)."""

    @workflow.run
    async def run(self, plan: ApplicantPlan) -> ActorOutcome:
        self.plan = plan
        self.app_id = plan.application.application_id
        self.actions = 0
        self.reviewed: list[str] = []
        self.done: set[str] = set()
        self.stage_seen: dict[str, date] = {}
        assert plan.application.submitted_at is not None
        await self._sleep_until(plan.application.submitted_at)
        await self._activity("simulate_submit", plan.application, bool)
        for _ in range(MAX_STEPS):
            look = await self._activity("simulate_look", self.app_id, Look)
            stage = look.stage or "SUBMITTED"
            if stage in TERMINAL_STAGES or workflow.now() > plan.horizon:
                return ActorOutcome(application_id=self.app_id, stage=stage, actions=self.actions)
            self.stage_seen.setdefault(stage, workflow.now().date())
            await self._act(stage, look)
        return ActorOutcome(application_id=self.app_id, stage="UNFINISHED", actions=self.actions)

    async def _act(self, stage: str, look: Look) -> None:
        """What happens in `stage`; ends by sleeping until the next look is worth taking."""
        today = workflow.now().date()
        if stage == Stage.REVIEW:
            sent = await self._review(look)  # a decision moves the exchange on at once: look again tomorrow
            await self._sleep_until(self._at(workflow.now().date() + DAY if sent else today + WEEK))
        elif stage == Stage.AGREEMENT:
            await self._agree(today)
        elif stage == Stage.TRAVEL:
            await self._travel()
        elif stage == Stage.REPORTING:
            await self._report()
        elif stage == Stage.PAYMENT:
            await self._pay(look, today)
        else:  # SUBMITTED, SCREENING, FUNDING, WAITLISTED: nothing is anyone's to do here yet
            await self._sleep_until(self._at(today + DAY))

    async def _review(self, look: Look) -> bool:
        plan = self.plan
        due: list[tuple[datetime, str, int]] = []
        for reviewer in look.open_reviewers:
            if reviewer in self.reviewed:
                continue
            self.reviewed.append(reviewer)
            k = min(len(self.reviewed), len(plan.reviewers)) - 1
            after = plan.reviewers[k].after_days
            if after is not None:
                due.append((self._at(workflow.now().date() + timedelta(days=after), HOURS["review"]), reviewer, k))
        for at, reviewer, k in sorted(due):
            await self._sleep_until(at)
            reject = plan.reviewers[k].recommendation == "reject"
            payload = {
                "actor_id": reviewer,
                "recommendation": plan.reviewers[k].recommendation,
                "scores": dict.fromkeys(plan.criteria, 2 if reject else 4),
            }
            await self._decide("submit_review", payload, key=reviewer)
        return bool(due)

    async def _agree(self, today: date) -> None:
        plan, app = self.plan, self.plan.application
        if plan.sign_after_days is None or "agree" in self.done:
            await self._sleep_until(self._at(today + WEEK))  # nobody signs: the agreement lapses at its deadline
            return
        self.done.add("agree")
        await self._sleep_until(
            self._at(self.stage_seen["AGREEMENT"] + timedelta(days=plan.sign_after_days), HOURS["agree"])
        )
        parties = {
            "HO": app.host.organisation_id,
            "HOP": app.host_partnership_id,
            "VO": app.visitor.organisation_id,
            "VOP": app.visitor_partnership_id,
        }
        decisions = [
            self._decision(
                "sign_commitment",
                {"actor_id": f"signatory-{party}-{self.app_id}", "party": party, "on_behalf_of": on_behalf_of},
                key=party,
            )
            for party, on_behalf_of in parties.items()
        ]
        decisions += [
            self._decision(
                "confirm_match",
                {"actor_id": f"{side}-contact-{self.app_id}", "side": side, "on_behalf_of": parties[party]},
                key=side,
            )
            for side, party in (("host", "HO"), ("visitor", "VO"))
        ]
        self.actions += len(decisions)
        await self._activity("simulate_decide_all", DecideAll(decisions=tuple(decisions)), list)
        await self._sleep_until(self._at(workflow.now().date() + DAY))

    async def _travel(self) -> None:
        plan, app = self.plan, self.plan.application
        if plan.withdraw_on is not None and "withdraw" not in self.done:
            self.done.add("withdraw")
            await self._sleep_until(self._at(plan.withdraw_on, HOURS["travel"]))
            await self._decide("withdraw", {"actor_id": f"vo-{self.app_id}", "reason": "the traveller cannot go"})
        elif "attendance" not in self.done:
            self.done.add("attendance")
            await self._sleep_until(self._at(app.start_date, HOURS["travel"]))
            host = f"ho-{self.app_id}"
            if plan.no_show:
                await self._decide("report_no_show", {"actor_id": host, "reason": "the visitor did not arrive"})
            else:
                attendance: dict[str, object] = {"actor_id": host}
                if plan.actual_end_date is not None:
                    attendance["actual_end_date"] = plan.actual_end_date.isoformat()
                await self._decide("confirm_attendance", attendance)
        await self._sleep_until(self._at(max(app.end_date + DAY, workflow.now().date() + DAY)))

    async def _report(self) -> None:
        plan, app = self.plan, self.plan.application
        stay_ended = plan.actual_end_date or app.end_date
        if plan.report_after_days is None or "report" in self.done:
            await self._sleep_until(self._at(workflow.now().date() + WEEK))  # the deadline forfeits it
            return
        self.done.add("report")
        await self._sleep_until(self._at(stay_ended + timedelta(days=plan.report_after_days), HOURS["report"]))
        report = ReportInput(application_id=self.app_id, actor_id=f"vo-{self.app_id}")
        result = await self._activity("simulate_report", report, DecideResult)
        self.actions += 1
        if not result.accepted:
            return
        await self._sleep_until(
            self._at(workflow.now().date() + timedelta(days=plan.validate_after_days), HOURS["validate"])
        )
        validation = {
            "actor_id": f"vop-{self.app_id}",
            "decision": "accept",
            "on_behalf_of": app.visitor_partnership_id,
        }
        await self._decide("validate_report", validation)
        await self._sleep_until(self._at(workflow.now().date() + DAY))

    async def _pay(self, look: Look, today: date) -> None:
        if look.order_id is None or look.order_cents is None or "pay" in self.done:
            await self._sleep_until(self._at(today + WEEK))
            return
        self.done.add("pay")
        await self._sleep_until(
            self._at(self.stage_seen["PAYMENT"] + timedelta(days=self.plan.pay_after_days), HOURS["pay"])
        )
        payment = PayInput(application_id=self.app_id, order_id=look.order_id, amount_cents=look.order_cents)
        await self._activity("simulate_pay", payment, bool)
        self.actions += 1
        await self._sleep_until(self._at(workflow.now().date() + DAY))

    async def _decide(self, update: str, payload: Mapping[str, object], key: str = "") -> DecideResult:
        self.actions += 1
        return await self._activity("simulate_decide", self._decision(update, payload, key), DecideResult)

    def _decision(self, update: str, payload: Mapping[str, object], key: str = "") -> DecideInput:
        return DecideInput(
            application_id=self.app_id, update=update, payload=dict(payload), update_id=f"{self.app_id}:{update}:{key}"
        )

    def _at(self, day: date, hour: int = LOOK_HOUR) -> datetime:
        """`day` at `hour` UTC plus this application's slot (see ApplicantPlan)."""
        at = datetime.combine(day, time(0, 0), tzinfo=UTC)
        return at + timedelta(hours=hour, seconds=self.plan.slot_seconds)

    async def _sleep_until(self, at: datetime) -> None:
        if at > workflow.now():
            await workflow.sleep(at - workflow.now())

    async def _activity(self, name: str, arg: object, result_type: type[T]) -> T:
        result: T = await workflow.execute_activity(
            name, arg, result_type=result_type, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY
        )
        return result
