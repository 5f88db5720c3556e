"""Nightly reconciliation: the Reconcile workflow's input and result, and the typed findings it reports.

The Reconcile workflow (workflows/reconcile.py) compares, for every exchange, what the workflow says (its
search attributes), what the read model says, what the ledger says and what the payment orders say, plus
the ledger's own invariants; every difference is a `Finding`. It reads and reports, never books money
(docs/adr/0026-reconciliation-schedule.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

RECONCILE_WORKFLOW_TYPE = "Reconcile"
RECONCILE_SCHEDULE_ID = "cx-reconcile-nightly"
# The schedule's workflow ids are this plus the scheduled instant; `cx reconcile` adds its own suffix.
RECONCILE_WORKFLOW_ID_PREFIX = "reconcile"
RECONCILE_CRON = "0 2 * * *"  # 02:00 UTC every night
DEFAULT_SETTLE_SECONDS = 300
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 1_000
FINDINGS_LISTED = 50  # in the workflow's result and the alert; the table holds them all


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Comparison(StrEnum):
    """The four agreements checked, each by one activity that pages through its side."""

    WORKFLOWS = "workflows"  # (a) workflow state (search attributes, status) against the read model
    LEDGER = "ledger"  # (b) the read model's stage and amounts against the ledger
    PAYMENT_ORDERS = "payment_orders"  # (c) payment orders against the ledger and the stage
    LEDGER_INVARIANTS = "ledger_invariants"  # (d) ledger/checks.py


class FindingKind(StrEnum):
    """What disagrees (docs/operations.md, "Nightly reconciliation", says what each means and what to do)."""

    WORKFLOW_MISSING = "workflow_missing"  # a read-model row whose exchange workflow does not exist
    READ_MODEL_MISSING = "read_model_missing"  # an exchange workflow with no read-model row
    WORKFLOW_STAGE = "workflow_stage"  # CxStage differs from the read model's stage
    WORKFLOW_GRANT = "workflow_grant"  # CxGrantCents differs from the read model's grant
    WORKFLOW_ENDED = "workflow_ended"  # the workflow failed, was terminated or timed out; the row is still open
    LEDGER_HELD = "ledger_held"  # the read model's held amount differs from the ledger's open holds
    LEDGER_PAID = "ledger_paid"  # the read model's paid amount differs from the ledger's pay-outs
    LEDGER_POSTED = "ledger_posted"  # posted to the exchange differs from paid out of it
    LEDGER_ORPHAN = "ledger_orphan"  # a ledger exchange account with no read-model row
    PAYMENT_ORDER_MISSING = "payment_order_missing"  # money paid out (or PAID) without a payment order
    PAYMENT_ORDER_LEDGER = "payment_order_ledger"  # the order's amount or transfers differ from the ledger
    PAYMENT_ORDER_STAGE = "payment_order_stage"  # the order's existence or confirmation differs from the stage
    LEDGER_INVARIANT = "ledger_invariant"  # a breach found by ledger/checks.py


COMPARED_BY: dict[Comparison, frozenset[FindingKind]] = {
    Comparison.WORKFLOWS: frozenset(
        {
            FindingKind.WORKFLOW_MISSING,
            FindingKind.READ_MODEL_MISSING,
            FindingKind.WORKFLOW_STAGE,
            FindingKind.WORKFLOW_GRANT,
            FindingKind.WORKFLOW_ENDED,
        }
    ),
    Comparison.LEDGER: frozenset(
        {FindingKind.LEDGER_HELD, FindingKind.LEDGER_PAID, FindingKind.LEDGER_POSTED, FindingKind.LEDGER_ORPHAN}
    ),
    Comparison.PAYMENT_ORDERS: frozenset(
        {FindingKind.PAYMENT_ORDER_MISSING, FindingKind.PAYMENT_ORDER_LEDGER, FindingKind.PAYMENT_ORDER_STAGE}
    ),
    Comparison.LEDGER_INVARIANTS: frozenset({FindingKind.LEDGER_INVARIANT}),
}


class Finding(_Message):
    """One difference: what was expected (by the other side) and what was found."""

    kind: FindingKind
    application_id: str | None = Field(default=None, description="None for a ledger-wide breach")
    expected: str = Field(max_length=2_000)
    found: str = Field(max_length=2_000)


class ReconcileInput(_Message):
    """`settle_seconds`: exchanges (and workflows) that moved this recently are left for the next run, since
    the read model, the ledger and the search attributes are written one after the other; tests pass 0."""

    settle_seconds: int = Field(default=DEFAULT_SETTLE_SECONDS, ge=0, le=86_400)
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


class CompareInput(_Message):
    run_id: str
    comparison: Comparison
    cutoff: AwareDatetime = Field(description="only what last moved before this instant is compared")
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE)


class CompareResult(_Message):
    comparison: Comparison
    compared: int = Field(ge=0, description="exchanges (or checks) compared")
    differences: int = Field(ge=0)


class ReportInput(_Message):
    run_id: str
    started_at: AwareDatetime
    compared: dict[Comparison, int]


class ReconcileResult(_Message):
    """The run's outcome: counts per kind and the first FINDINGS_LISTED findings (the table holds all)."""

    run_id: str
    started_at: datetime
    compared: dict[Comparison, int]
    differences: int = Field(ge=0)
    by_kind: dict[FindingKind, int]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return self.differences == 0
