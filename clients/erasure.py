"""Erasing a person, end to end: the database (ledger/erasure.py), then the Temporal histories that name them.

Issue 16, item 2. `cx privacy erase` and `POST /privacy/people/{person}/erasure` call `erase`. Postgres is
erased first, in one transaction (keys destroyed, identifiers replaced by the person's ref). Then the
histories of the exchanges the person took part in are deleted from Temporal (DeleteWorkflowExecution):
their payloads carry the person's ids and words (encrypted by the payload codec, but readable by whoever
holds the programme's keys), and a history cannot be edited, only deleted whole. The money trail does not
live there: the ledger, payment orders and audit trail are Postgres'. Only closed workflows are deleted (the
erasure is refused while an exchange is open, and a workflow still running is left and reported); a server
that cannot delete (Temporal's time-skipping test server) is reported too, and the namespace's retention
deletes those histories later (docs/privacy.md). A repeat deletes what a failed first attempt left.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest, DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ledger.erasure import ErasureResult, erase_person
from schemas.ids import exchange_workflow_id


class ErasureReport(BaseModel):
    """The database's erasure and what became of the histories."""

    erasure: ErasureResult
    histories_deleted: list[str]
    histories_kept: dict[str, str]  # workflow id -> why it was kept


async def erase(
    pool: asyncpg.Pool,
    temporal: Client,
    identifiers: Sequence[str],
    addresses: Sequence[str],
    officer: str,
    reason: str,
) -> ErasureReport:
    """Erase the person in Postgres, then delete the histories of their exchanges (raises PersonStillParty)."""
    async with pool.acquire() as conn:
        result = await erase_person(conn, identifiers, addresses, officer, reason)
    deleted: list[str] = []
    kept: dict[str, str] = {}
    for application_id in result.application_ids:
        workflow_id = exchange_workflow_id(application_id)
        why = await _delete_history(temporal, workflow_id)
        if why is None:
            deleted.append(workflow_id)
        else:
            kept[workflow_id] = why
    return ErasureReport(erasure=result, histories_deleted=deleted, histories_kept=kept)


async def _delete_history(temporal: Client, workflow_id: str) -> str | None:
    """Delete the workflow's closed history; None when done (or already gone), else why it was kept."""
    # The raw call: the SDK's `describe()` also decodes search attributes, which it need not (and cannot, from
    # Temporal's time-skipping test server) do to learn whether the run is closed.
    execution = WorkflowExecution(workflow_id=workflow_id)
    try:
        description = await temporal.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=temporal.namespace, execution=execution)
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None  # deleted by an earlier attempt, or by the namespace's retention
        return f"not described: {error.message}"
    info = description.workflow_execution_info
    if info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return "still running: deleting it would terminate it"
    request = DeleteWorkflowExecutionRequest(
        namespace=temporal.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=info.execution.run_id),
    )
    try:
        await temporal.workflow_service.delete_workflow_execution(request)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        if error.status is RPCStatusCode.UNIMPLEMENTED:
            return "this Temporal server cannot delete histories: the namespace's retention will"
        return f"not deleted: {error.message}"
    return None
