"""`cx reconcile`: run the nightly reconciliation now, wait for it, print what differs (issue 17, item 4).

It starts the Reconcile workflow (the same one the schedule `cx-reconcile-nightly` starts at 02:00 UTC) on
the engine's task queue, so a worker must be running; it reads and reports, never changes money.

  exit 0  every agreement holds
  exit 7  DIFFERENCES: differences found, each printed (and kept in `reconciliation_findings` under the run id)
  exit 5  UNAVAILABLE: Temporal unreachable, or the run did not finish within --timeout (it goes on)
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from temporalio.client import WorkflowFailureError

from clients.command import CommandFailed, console, run
from clients.config import client_config
from clients.exit_codes import ExitCode
from schemas.reconcile import (
    DEFAULT_SETTLE_SECONDS,
    RECONCILE_WORKFLOW_ID_PREFIX,
    RECONCILE_WORKFLOW_TYPE,
    ReconcileInput,
    ReconcileResult,
)


def reconcile(
    ctx: typer.Context,
    settle_s: Annotated[
        int,
        typer.Option("--settle", min=0, max=86_400, help="leave exchanges that moved in the last N seconds"),
    ] = DEFAULT_SETTLE_SECONDS,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds to wait for the run's end (it goes on after)")
    ] = 3_600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Compare every exchange's workflow, read-model row, ledger account and payment order now; exit 7 if any differ.

    Nothing is changed: each difference is printed, written to reconciliation_findings and alerted.

    Example: cx reconcile --settle 0
    """
    config = client_config(ctx)
    workflow_id = f"{RECONCILE_WORKFLOW_ID_PREFIX}-now-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"

    async def main() -> ReconcileResult:
        client = await config.temporal_client()
        handle = await client.start_workflow(
            RECONCILE_WORKFLOW_TYPE,
            ReconcileInput(settle_seconds=settle_s),
            id=workflow_id,
            task_queue=config.task_queue,
            result_type=ReconcileResult,
        )
        try:
            return await asyncio.wait_for(handle.result(), timeout=timeout_s)
        except TimeoutError:
            raise CommandFailed(
                f"reconciliation {workflow_id}: not finished after {timeout_s:g} s (is a worker running?); "
                "it goes on, its findings land in reconciliation_findings",
                ExitCode.UNAVAILABLE,
            ) from None
        except WorkflowFailureError as error:
            raise CommandFailed(
                f"reconciliation {workflow_id} failed: {error.cause or error}", ExitCode.INTERNAL
            ) from None

    result = run(main)
    if as_json:
        sys.stdout.write(json.dumps({"ok": result.ok, **result.model_dump(mode="json")}, indent=2) + "\n")
    else:
        _print(workflow_id, result)
    if not result.ok:
        raise typer.Exit(ExitCode.DIFFERENCES)


def _print(workflow_id: str, result: ReconcileResult) -> None:
    compared = ", ".join(f"{comparison.value} {n}" for comparison, n in result.compared.items())
    console.print(f"reconciliation {workflow_id} (run {result.run_id}); compared: {compared}")
    if result.ok:
        console.print("no differences")
        return
    kinds = ", ".join(f"{kind.value} {n}" for kind, n in sorted(result.by_kind.items()))
    console.print(f"{result.differences} difference(s): {kinds}; nothing was changed")
    for item in result.findings:
        console.print(
            f"  {item.kind.value}  {item.application_id or '(ledger)'}: expected {item.expected}; found {item.found}"
        )
    if result.differences > len(result.findings):
        console.print(f"  ... and {result.differences - len(result.findings)} more (reconciliation_findings, run id)")
