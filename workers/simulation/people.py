"""The simulation's activities: how its people reach the engine (issue 17; docs/adr/0027-programme-simulation.md).

The same doors as real people: the exchange is started as `cx submit` starts it, decisions are updates sent
with the raw SDK as another service would, the report's evidence is stored as `cx evidence add` stores it, finance's
confirmation is the `confirm_payment` signal; what people see is the Postgres read model. Each activity is one
short unit of work, safe to run twice (a started exchange is not started again; an update carries an id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from clients.client import DecisionRefused, ExchangeClient
from ledger.evidence import store_evidence
from ledger.evidence_store import FileEvidenceStore
from schemas.exchange import ApplicationInput
from schemas.ids import EXCHANGE_WORKFLOW_TYPE, exchange_workflow_id
from schemas.messages import UPDATES
from workers.dev_up import demo_boarding_pass
from workers.simulation.contract import DecideAll, DecideInput, DecideResult, Look, PayInput, ReportInput

UPDATE_RPC_TIMEOUT = timedelta(seconds=20)  # well inside the activity's 60 s: an unanswered update is not retried
_LOOK = """
    SELECT e.stage,
           (SELECT coalesce(array_agg(ra.reviewer_id ORDER BY ra.reviewer_id), '{}')
              FROM review_assignments ra
             WHERE ra.application_id = e.application_id AND ra.status = 'open') AS reviewers,
           po.payment_order_id, po.amount_cents
      FROM exchanges e
      LEFT JOIN payment_orders po ON po.application_id = e.application_id
     WHERE e.application_id = $1"""


class PeopleActivities:
    def __init__(self, client: Client, pool: asyncpg.Pool, engine_task_queue: str, evidence_dir: Path) -> None:
        self._client = client
        self._exchanges = ExchangeClient(client, engine_task_queue)
        self._pool = pool
        self._queue = engine_task_queue
        self._evidence = FileEvidenceStore(evidence_dir)

    @activity.defn(name="simulate_submit")
    async def submit(self, application: ApplicationInput) -> bool:
        """Start the exchange as another service would (the raw SDK: its policy version may be a candidate's,
        known to the simulation's worker only). True when this call started it."""
        try:
            await self._client.start_workflow(
                EXCHANGE_WORKFLOW_TYPE,
                application,
                id=exchange_workflow_id(application.application_id),
                task_queue=self._queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            return False  # a retry of this activity: started the first time
        return True

    @activity.defn(name="simulate_look")
    async def look(self, application_id: str) -> Look:
        row = await self._pool.fetchrow(_LOOK, application_id)
        if row is None:
            return Look()
        return Look(
            stage=row["stage"],
            open_reviewers=tuple(row["reviewers"]),
            order_id=row["payment_order_id"],
            order_cents=row["amount_cents"],
        )

    @activity.defn(name="simulate_decide")
    async def decide(self, decision: DecideInput) -> DecideResult:
        """Send the update and wait for its outcome, one at a time per exchange: the time-skipping server mishandles
        an update that arrives while the workflow is still processing the previous one ("invalid history builder
        state"), after which that exchange's updates are never accepted (ADR 0027). An update left unanswered
        within UPDATE_RPC_TIMEOUT is reported as such, not retried: the actor's next look decides what follows."""
        payload = UPDATES[decision.update].model_validate(decision.payload)
        handle = self._client.get_workflow_handle(exchange_workflow_id(decision.application_id))
        try:
            await handle.execute_update(decision.update, payload, id=decision.update_id, rpc_timeout=UPDATE_RPC_TIMEOUT)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return DecideResult(accepted=False, refusal="no answer")
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            return DecideResult(accepted=False, refusal=cause.type if isinstance(cause, ApplicationError) else None)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return DecideResult(accepted=False, refusal="ended")  # the exchange's workflow has closed
        return DecideResult(accepted=True)

    @activity.defn(name="simulate_decide_all")
    async def decide_all(self, decisions: DecideAll) -> list[DecideResult]:
        """Several people deciding at one instant, in order (the four signatures and two match confirmations)."""
        return [await self.decide(decision) for decision in decisions.decisions]

    @activity.defn(name="simulate_report")
    async def report(self, request: ReportInput) -> DecideResult:
        """The traveller uploads a boarding pass and submits the closing report."""
        content = await asyncio.to_thread(demo_boarding_pass, request.application_id)
        async with self._pool.acquire() as conn:
            item = await store_evidence(
                conn,
                self._evidence,
                application_id=request.application_id,
                path_or_bytes=content,
                name="boarding-pass.pdf",
                kind="boarding_pass",
                uploaded_by=request.actor_id,
            )
        report = {
            "actor_id": request.actor_id,
            "summary": "Closing report: goals met.",
            "evidence": [item.model_dump()],
        }
        decision = DecideInput(
            application_id=request.application_id,
            update="submit_report",
            payload=report,
            update_id=f"{request.application_id}:submit_report",
        )
        return await self.decide(decision)

    @activity.defn(name="simulate_pay")
    async def pay(self, payment: PayInput) -> bool:
        confirmation = {
            "payment_order_id": payment.order_id,
            "amount_cents": payment.amount_cents,
            "payment_reference": f"SEPA-{payment.application_id}",
            "confirmed_by": "finance-simulation",
        }
        try:
            await self._exchanges.confirm_payment(payment.application_id, confirmation)
        except DecisionRefused:
            return False  # the exchange ended meanwhile (its wait for finance has a limit)
        return True

    def all(self) -> list[Callable[..., Any]]:
        return [self.submit, self.look, self.decide, self.decide_all, self.report, self.pay]
