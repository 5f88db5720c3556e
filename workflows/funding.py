"""FUNDING's waitlist, the Funds workflow: one per partnership, a FIFO of the exchanges the budget could not cover.

Messages: signals `join` (an exchange waits), `released` (money came back: a void, a smaller final
payment, a top-up); update `leave` (an exchange stops waiting: its deadline passed, or it was withdrawn
or cancelled), which answers with the hold placed for it, if any, so no hold is ever left behind.
When money is released the waitlist itself places the holds, oldest exchange first, with each
exchange's own idempotency key, and stops at the first that does not fit (strict FIFO: a younger,
smaller grant never overtakes). It continues as new before its history grows large, and ends when
idle with nobody waiting (the next signal-with-start begins a new run).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.funding import LedgerActivities
    from schemas.funding import (
        FundsHeldInput,
        FundsReleasedInput,
        FundsState,
        HoldFundsInput,
        LeaveWaitlistResult,
        VoidHoldInput,
        WaitingExchange,
    )
    from schemas.ids import exchange_workflow_id
    from workflows import options

IDLE_LIMIT = timedelta(days=7)
HISTORY_LIMIT = 2_000  # events; continue as new well before Temporal's own limits


@workflow.defn(name="Funds")
class FundsWorkflow:
    """Per-partnership FIFO waitlist; see the module docstring."""

    @workflow.init
    def __init__(self, state: FundsState) -> None:
        self._partnership_id = state.partnership_id
        self._queue: list[WaitingExchange] = list(state.queue)
        self._release_pending = state.release_pending
        self._serving: str | None = None
        self._placed: dict[str, int] = {}  # exchange -> hold placed for it by this run

    @workflow.run
    async def run(self, state: FundsState) -> None:
        while True:
            try:
                await workflow.wait_condition(lambda: self._release_pending, timeout=IDLE_LIMIT)
            except TimeoutError:
                if not self._queue:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return
                continue
            self._release_pending = False
            await self._serve()
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    FundsState(
                        partnership_id=self._partnership_id,
                        queue=tuple(self._queue),
                        release_pending=self._release_pending,
                    )
                )

    async def _serve(self) -> None:
        while self._queue:
            head = self._queue[0]
            self._serving = head.application_id
            try:
                result = await workflow.execute_activity_method(
                    LedgerActivities.hold_funds,
                    HoldFundsInput(
                        application_id=head.application_id,
                        partnership_id=self._partnership_id,
                        amount_cents=head.amount_cents,
                        idempotency_key=head.hold_key,
                    ),
                    **options.DATABASE,
                )
            finally:
                self._serving = None
            if not result.held or result.transfer_id is None:
                return  # the oldest still does not fit: everyone behind it keeps waiting
            self._queue.pop(0)
            self._placed[head.application_id] = result.transfer_id
            try:
                await workflow.get_external_workflow_handle(exchange_workflow_id(head.application_id)).signal(
                    "funds_held", FundsHeldInput(hold_id=result.transfer_id, amount_cents=head.amount_cents)
                )
            except ApplicationError:
                # The exchange is gone (it cannot be: it leaves through `leave` first); never strand money.
                await self._void(head.application_id, result.transfer_id)

    async def _void(self, application_id: str, hold_id: int) -> None:
        await workflow.execute_activity_method(
            LedgerActivities.void_hold,
            VoidHoldInput(hold_id=hold_id, idempotency_key=f"{application_id}:void:{hold_id}"),
            **options.DATABASE,
        )
        self._release_pending = True

    @workflow.signal(name="join")
    def join(self, waiting: WaitingExchange) -> None:
        if all(w.application_id != waiting.application_id for w in self._queue):
            self._queue.append(waiting)
        self._release_pending = True  # money may already be there: try at once, in order

    @workflow.signal(name="released")
    def released(self, release: FundsReleasedInput) -> None:
        self._release_pending = True

    @workflow.update(name="leave")
    async def leave(self, application_id: str) -> LeaveWaitlistResult:
        # A hold being placed for this exchange right now is finished first, then handed over.
        await workflow.wait_condition(lambda: self._serving != application_id)
        self._queue = [w for w in self._queue if w.application_id != application_id]
        return LeaveWaitlistResult(hold_id=self._placed.pop(application_id, None))

    @workflow.query(name="queue")
    def queue(self) -> list[str]:
        return [w.application_id for w in self._queue]
