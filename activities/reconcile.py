"""Nightly reconciliation's activities: one per agreement compared, and one that reports the run.

`compare` pages through one side of an agreement (ledger/reconciliation.py for the database, the Temporal
visibility store for the workflows), writes each page's findings (`reconciliation_findings`, idempotent per
run), logs each new finding as a structured warning and counts it in `cx_reconcile_differences{kind}`. It
heartbeats after every page with where it got to, so a retried attempt resumes there. `report_findings`
reads the run's findings back, and when there are any enqueues one notification to the programme address
(the transactional outbox, delivered by the dispatcher). Nothing here writes to the ledger, the read model
or the payment orders (docs/adr/0026-reconciliation-schedule.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from activities.metrics import count
from activities.outbox import enqueue
from ledger import reconciliation as rec
from ledger.checks import check_ledger
from ledger.store import DbConnection
from schemas.ids import EXCHANGE_WORKFLOW_TYPE, exchange_workflow_id
from schemas.reconcile import (
    FINDINGS_LISTED,
    CompareInput,
    CompareResult,
    Comparison,
    Finding,
    FindingKind,
    ReconcileResult,
    ReportInput,
)
from schemas.search import CX_GRANT_CENTS, CX_STAGE

# One page of a comparison: (connection, after, limit, cutoff) -> (rows read, findings, next `after` or None).
Page = Callable[[DbConnection, str, int, datetime], Awaitable[tuple[int, list[Finding], str | None]]]
IN_LIST_IDS = 100  # workflow ids per visibility query
HEARTBEAT_EVERY_S = 20.0  # well inside workflows/options.py RECONCILE's heartbeat timeout
ENDED_BADLY = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    }
)


class ReconcileActivities:
    """Holds the pool, the Temporal client and the exchanges' task queue (whose workflows are compared)."""

    def __init__(self, pool: asyncpg.Pool, client: Client, task_queue: str, notify_email: str | None = None) -> None:
        self._pool = pool
        self._client = client
        self._task_queue = task_queue
        self._notify_email = notify_email

    @activity.defn(name="reconcile_compare")
    async def compare(self, request: CompareInput) -> CompareResult:
        """Compare one agreement page by page; every difference found is written, logged and counted."""
        passes: tuple[Page, ...]
        match request.comparison:
            case Comparison.WORKFLOWS:
                forgotten_before = request.cutoff - await self._retention()
                passes = (partial(self._workflows_of_rows, forgotten_before), self._workflows_without_rows)
            case Comparison.LEDGER:
                passes = (rec.ledger_page, rec.ledger_orphans)
            case Comparison.PAYMENT_ORDERS:
                passes = (rec.orders_page, rec.orphan_orders)
            case Comparison.LEDGER_INVARIANTS:
                return await self._invariants(request)
        details = activity.info().heartbeat_details
        start_pass, after = (int(details[0]), str(details[1])) if details else (0, "")
        compared = differences = 0
        for index in range(start_pass, len(passes)):
            cursor: str | None = after if index == start_pass else ""
            while cursor is not None:
                async with self._pool.acquire() as conn:
                    rows, found, cursor = await passes[index](conn, cursor, request.page_size, request.cutoff)
                    await self._record(conn, request.run_id, found)
                compared, differences = compared + (rows if index == 0 else 0), differences + len(found)
                activity.heartbeat(index, cursor or "")
        return CompareResult(comparison=request.comparison, compared=compared, differences=differences)

    async def _invariants(self, request: CompareInput) -> CompareResult:
        # The checks read the whole ledger in one snapshot, with no page to heartbeat after: a beat every
        # HEARTBEAT_EVERY_S while they run says the worker is alive (a dead one is still noticed in time).
        beating = asyncio.create_task(_beat(HEARTBEAT_EVERY_S))
        try:
            report = await check_ledger(self._pool)
        finally:
            beating.cancel()
        found = rec.invariant_findings(report)
        async with self._pool.acquire() as conn:
            await self._record(conn, request.run_id, found)
        return CompareResult(comparison=request.comparison, compared=len(report.checks), differences=len(found))

    async def _record(self, conn: DbConnection, run_id: str, found: list[Finding]) -> None:
        """Write a page's findings; log and count only those this attempt wrote first (a retry counts none)."""
        for item in await rec.record_findings(conn, run_id, found):
            activity.logger.warning(
                "reconciliation difference",
                extra={
                    "run_id": run_id,
                    "kind": item.kind.value,
                    "application_id": item.application_id,
                    "expected": item.expected,
                    "found": item.found,
                },
            )
            count("cx_reconcile_differences", 1, "differences found by the nightly reconciliation", kind=item.kind)

    # (a) the workflows against the read model --------------------------------------------------------------

    async def _retention(self) -> timedelta:
        """How long the namespace keeps a closed workflow (after that, its absence is no difference)."""
        described = await self._client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=self._client.namespace)
        )
        return described.config.workflow_execution_retention_ttl.ToTimedelta()

    async def _workflows_of_rows(
        self, forgotten_before: datetime, conn: DbConnection, after: str, limit: int, cutoff: datetime
    ) -> tuple[int, list[Finding], str | None]:
        """One page of read-model rows, each compared with its workflow's status and search attributes. A closed
        exchange's row last written before `forgotten_before` may have outlived its workflow (namespace
        retention removes closed workflows): its absence is not reported."""
        rows = await rec.workflow_page(conn, after, limit, cutoff)
        executions = await self._executions([row["application_id"] for row in rows])
        found: list[Finding] = []
        for row in rows:
            runs = executions.get(row["application_id"], [])
            if not runs and row["stage"] in rec.TERMINAL and row["updated_at"] < forgotten_before:
                continue
            if not runs:
                found.append(
                    rec.finding(
                        FindingKind.WORKFLOW_MISSING,
                        row["application_id"],
                        f"an Exchange workflow {_workflow_id(row['application_id'])} (read model: {row['stage']})",
                        "no such workflow",
                    )
                )
            elif not row["recent"]:
                claimed = [run for run in runs if run.run_id == row["run_id"]]
                found += _compare_run(row, claimed[0] if claimed else max(runs, key=lambda run: run.start_time))
        return len(rows), found, rows[-1]["application_id"] if len(rows) == limit else None

    async def _executions(self, application_ids: list[str]) -> dict[str, list[WorkflowExecution]]:
        """Every execution of these exchanges' workflow ids, from the visibility store (a list call per
        IN_LIST_IDS ids, so a query stays short whatever the page size)."""
        ids = [_workflow_id(app_id) for app_id in application_ids]
        quoted = [f"'{workflow_id}'" for workflow_id in ids if _quotable(workflow_id)]
        found: dict[str, list[WorkflowExecution]] = {}
        for start in range(0, len(quoted), IN_LIST_IDS):
            chunk = quoted[start : start + IN_LIST_IDS]
            query = f"WorkflowId IN ({', '.join(chunk)})"
            async for execution in self._client.list_workflows(query, page_size=len(chunk) + 10):
                found.setdefault(execution.id.removeprefix("exchange:"), []).append(execution)
        return found

    async def _workflows_without_rows(
        self, conn: DbConnection, after: str, limit: int, cutoff: datetime
    ) -> tuple[int, list[Finding], str | None]:
        """One page of the task queue's Exchange workflows started before `cutoff`; those without a row."""
        query = (
            f"WorkflowType = '{EXCHANGE_WORKFLOW_TYPE}' AND TaskQueue = '{self._task_queue}' "
            f"AND StartTime < '{cutoff.isoformat()}'"
        )
        listing = self._client.list_workflows(
            query, page_size=limit, next_page_token=bytes.fromhex(after) if after else None
        )
        await listing.fetch_next_page()
        page = listing.current_page or []
        by_app = {execution.id.removeprefix("exchange:"): execution for execution in page}
        present = await rec.rows_present(conn, list(by_app))
        found = [
            rec.finding(
                FindingKind.READ_MODEL_MISSING,
                app_id,
                f"a read-model row for workflow {execution.id} (run {execution.run_id})",
                f"none (workflow {execution.status.name if execution.status else 'unknown'}, "
                f"CxStage {execution.typed_search_attributes.get(CX_STAGE)})",
            )
            for app_id, execution in by_app.items()
            if app_id not in present
        ]
        token = listing.next_page_token
        return len(page), found, token.hex() if token else None

    # The run's report ----------------------------------------------------------------------------------------

    @activity.defn(name="reconcile_report")
    async def report_findings(self, request: ReportInput) -> ReconcileResult:
        """The run's counts and first findings; one notification to the programme address when any differ."""
        async with self._pool.acquire() as conn, conn.transaction():
            by_kind, listed = await rec.findings_of(conn, request.run_id, FINDINGS_LISTED)
            total = sum(by_kind.values())
            if total and self._notify_email:
                await enqueue(
                    conn,
                    dedup_key=f"reconcile:{request.run_id}"[:200],
                    topic="notification",
                    channel="email",
                    destination=self._notify_email,
                    payload=_notification(request, total, by_kind, listed),
                )
        return ReconcileResult(
            run_id=request.run_id,
            started_at=request.started_at,
            compared=request.compared,
            differences=total,
            by_kind=by_kind,
            findings=tuple(listed),
        )


async def _beat(every_s: float) -> None:
    """Heartbeat every `every_s` seconds until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        activity.heartbeat()


def _compare_run(row: asyncpg.Record, run: WorkflowExecution) -> list[Finding]:
    """One exchange's read-model row against the execution that claimed its id."""
    app_id, stage = row["application_id"], row["stage"]
    if run.status in ENDED_BADLY:
        if stage in rec.TERMINAL:
            return []
        return [
            rec.finding(
                FindingKind.WORKFLOW_ENDED,
                app_id,
                f"workflow {run.id} running or completed (read model: {stage})",
                f"{run.status.name if run.status else 'unknown'} (run {run.run_id})",
            )
        ]
    found: list[Finding] = []
    published = run.typed_search_attributes.get(CX_STAGE)
    if published != stage:
        found.append(rec.finding(FindingKind.WORKFLOW_STAGE, app_id, f"CxStage {stage}", f"CxStage {published}"))
    grant = run.typed_search_attributes.get(CX_GRANT_CENTS)
    if grant != row["grant_cents"]:
        found.append(
            rec.finding(
                FindingKind.WORKFLOW_GRANT,
                app_id,
                f"CxGrantCents {rec.cents(row['grant_cents'])} (read model)",
                f"CxGrantCents {rec.cents(grant)}",
            )
        )
    return found


def _workflow_id(application_id: str) -> str:
    try:
        return exchange_workflow_id(application_id)
    except ValueError:
        return f"exchange:{application_id}"


def _quotable(workflow_id: str) -> bool:
    """Ids that can stand in a visibility query's quotes: a malformed one cannot name a workflow anyway."""
    return "'" not in workflow_id and "\\" not in workflow_id


def _notification(
    request: ReportInput, total: int, by_kind: dict[FindingKind, int], listed: list[Finding]
) -> dict[str, Any]:
    kinds = ", ".join(f"{kind.value} {n}" for kind, n in sorted(by_kind.items()))
    lines = [
        f"- {f.kind.value} {f.application_id or '(ledger)'}: expected {f.expected}; found {f.found}" for f in listed
    ]
    text = (
        f"The reconciliation run {request.run_id} (started {request.started_at.isoformat()}) found {total} "
        f"difference(s): {kinds}.\nNothing was changed. See docs/operations.md, 'Nightly reconciliation'.\n\n"
        + "\n".join(lines)
        + ("\n" if total <= len(listed) else f"\n... and {total - len(listed)} more in reconciliation_findings.\n")
    )
    return {
        "subject": f"[ClusterXchange] reconciliation: {total} difference(s)",
        "text": text[:60_000],
        "run_id": request.run_id,
        "differences": total,
    }
