"""Nightly reconciliation, the Reconcile workflow: compares and reports, never moves money.

Started by the Temporal Schedule `cx-reconcile-nightly` (02:00 UTC, overlapping runs skipped; created by
`cx temporal setup`) or at once by `cx reconcile`. Stages, one activity each, in this order:
(a) every exchange's workflow (status, CxStage, CxGrantCents) against its read-model row;
(b) the read model's stage and amounts against the ledger; (c) payment orders against the ledger and the
stage; (d) the ledger's own invariants (ledger/checks.py); then the report: counts per kind, the first
findings, and one notification to the programme address when anything differs.
Messages: none. Deadlines: each comparison is bounded (options.RECONCILE) and heartbeats per page.
The run's id (Temporal's run id) keys its rows in `reconciliation_findings`; see
docs/adr/0026-reconciliation-schedule.md.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities
    from schemas.reconcile import (
        RECONCILE_WORKFLOW_TYPE,
        CompareInput,
        Comparison,
        ReconcileInput,
        ReconcileResult,
        ReportInput,
    )
    from workflows import options


@workflow.defn(name=RECONCILE_WORKFLOW_TYPE)
class ReconcileWorkflow:
    """Compare the four agreements, then report; see the module docstring."""

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconcileResult:
        info = workflow.info()
        started_at = workflow.now()
        cutoff = started_at - timedelta(seconds=request.settle_seconds)
        compared: dict[Comparison, int] = {}
        for comparison in Comparison:
            result = await workflow.execute_activity_method(
                ReconcileActivities.compare,
                CompareInput(run_id=info.run_id, comparison=comparison, cutoff=cutoff, page_size=request.page_size),
                **options.RECONCILE,
            )
            compared[comparison] = result.compared
            workflow.logger.info(
                "compared %s: %s, %s difference(s)", comparison.value, result.compared, result.differences
            )
        return await workflow.execute_activity_method(
            ReconcileActivities.report_findings,
            ReportInput(run_id=info.run_id, started_at=started_at, compared=compared),
            **options.DATABASE,
        )
