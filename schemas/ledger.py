"""Ledger records: what the ledger store returns and what the ledger checks report.

Amounts are integer euro cents; instants are timezone-aware. Account codes are `programme`,
`payouts`, `budget:<partnership_id>` and `exchange:<application_id>`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TransferKind(StrEnum):
    ALLOCATE = "allocate"  # programme -> budget, posted
    HOLD = "hold"  # budget -> exchange, pending
    POST = "post"  # resolves a hold: the amount posted; the rest returns to the budget
    VOID = "void"  # resolves a hold: releases all of it
    PAY_OUT = "pay_out"  # exchange -> payouts, posted


class Transfer(_Record):
    """One immutable booking. A re-hold shows as a void and a hold with the same idempotency key."""

    id: int
    idempotency_key: str
    kind: TransferKind
    debit_account: str
    credit_account: str
    amount_cents: int = Field(gt=0, description="for a post, the amount posted; for a void, the amount released")
    pending_id: int | None = Field(default=None, description="the hold a post or void resolves")
    created_at: AwareDatetime
    replayed: bool = Field(
        default=False, description="True when this call returned the earlier result of the same idempotency key"
    )


class PartnershipBalance(_Record):
    """One partnership budget: allocated = held + paid + available."""

    partnership_id: str
    allocated_cents: int = Field(description="credits posted to the budget (allocations and top-ups)")
    held_cents: int = Field(description="holds pending on the budget")
    paid_cents: int = Field(description="holds posted from the budget to exchanges")
    available_cents: int = Field(description="what a new hold may still take")


class CheckResult(_Record):
    """One invariant the ledger check verified, with what breaks it (empty when ok)."""

    name: str
    description: str
    ok: bool
    skipped: bool = Field(default=False, description="True when the check could not run (reason in description)")
    breaches: tuple[str, ...] = ()
    breach_count: int = Field(default=0, description="all breaches found; `breaches` lists the first few")


class CheckReport(_Record):
    """Every invariant checked on one consistent snapshot of the ledger."""

    checked_at: AwareDatetime
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        """No check found a breach. (A property, not a field, so the record round-trips as JSON.)"""
        return all(check.ok for check in self.checks)
