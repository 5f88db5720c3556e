"""FUNDING (waitlist): talk to a partnership's Funds workflow from an exchange.

Activities, because a workflow cannot signal-with-start or send an update to another workflow itself.
Joining and announcing a release use signal-with-start, so the waitlist exists exactly when needed;
leaving is an update, so the exchange learns whether a hold was placed for it meanwhile.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas.funds import (
    FUNDS_WORKFLOW_TYPE,
    FundsReleasedInput,
    FundsState,
    JoinWaitlistInput,
    LeaveWaitlistInput,
    LeaveWaitlistResult,
    funds_workflow_id,
)


class WaitlistActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def _signal_with_start(self, partnership_id: str, signal: str, argument: object) -> None:
        await self._client.start_workflow(
            FUNDS_WORKFLOW_TYPE,
            FundsState(partnership_id=partnership_id),
            id=funds_workflow_id(partnership_id),
            task_queue=self._task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=signal,
            start_signal_args=[argument],
        )

    @activity.defn(name="join_waitlist")
    async def join_waitlist(self, request: JoinWaitlistInput) -> None:
        await self._signal_with_start(request.partnership_id, "join", request.waiting)

    @activity.defn(name="announce_release")
    async def announce_release(self, request: FundsReleasedInput) -> None:
        await self._signal_with_start(request.partnership_id, "released", request)

    @activity.defn(name="leave_waitlist")
    async def leave_waitlist(self, request: LeaveWaitlistInput) -> LeaveWaitlistResult:
        handle = self._client.get_workflow_handle(funds_workflow_id(request.partnership_id))
        try:
            result: LeaveWaitlistResult = await handle.execute_update(
                "leave", request.application_id, result_type=LeaveWaitlistResult
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return LeaveWaitlistResult()  # no waitlist running: nothing was placed for anyone
            raise
        return result
