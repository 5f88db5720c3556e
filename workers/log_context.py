"""`exchange_id` and `activity` on every log line an activity writes, whoever writes it (issue 15, item 6).

The SDK's `activity.logger` already attaches the workflow id (workers/logging.py lifts it), but a line from
anything else an activity calls (the ledger, asyncpg, httpx, a structlog logger) knew nothing of the exchange.
This worker interceptor binds structlog context variables for the activity's run: `exchange_id` (the
application id of an `exchange:<id>` workflow; the workflow id itself for any other workflow, e.g. a
partnership's `Funds`), `workflow_id` and `activity`. workers/logging.py merges them into every line,
stdlib records included. Each activity runs in its own asyncio task, so the binding ends with it.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

EXCHANGE_PREFIX = "exchange:"


def exchange_id_of(workflow_id: str) -> str:
    """The exchange a workflow id concerns: `exchange:app-1` -> `app-1`; any other id as it is."""
    return workflow_id.removeprefix(EXCHANGE_PREFIX)


class ExchangeLogContext(Interceptor):
    """Worker interceptor: binds exchange_id, workflow_id and activity around every activity run."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindExchange(next)


class _BindExchange(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or ""
        with structlog.contextvars.bound_contextvars(
            exchange_id=exchange_id_of(workflow_id) if workflow_id else None,
            workflow_id=workflow_id or None,
            activity=info.activity_type,
        ):
            return await self.next.execute_activity(input)
