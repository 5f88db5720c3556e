"""FUNDING and releases: the ledger activities (hold, void), each one idempotent ledger write.

Business refusals (no budget) are results; permanent ledger refusals become non-retryable
ApplicationErrors typed by the ledger error's code; transient database errors propagate so that
Temporal retries them with the same idempotency key, which books nothing twice.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import count
from ledger.errors import BudgetExhausted, LedgerError
from ledger.store import LedgerStore
from schemas.activities import (
    HoldFundsInput,
    HoldFundsResult,
    ReholdFundsInput,
    ReholdFundsResult,
    VoidHoldInput,
    VoidHoldResult,
)


def as_application_error(error: LedgerError) -> ApplicationError:
    return ApplicationError(str(error), type=error.code, non_retryable=True)


class LedgerActivities:
    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    @activity.defn(name="hold_funds")
    async def hold_funds(self, request: HoldFundsInput) -> HoldFundsResult:
        try:
            transfer = await self._store.hold(
                idempotency_key=request.idempotency_key,
                partnership_id=request.partnership_id,
                exchange_id=request.exchange_id,
                amount_cents=request.amount_cents,
            )
        except BudgetExhausted as refused:
            activity.logger.info("hold refused: budget exhausted", extra={"available_cents": refused.available_cents})
            return HoldFundsResult(held=False, available_cents=refused.available_cents)
        except LedgerError as error:
            raise as_application_error(error) from error
        if not transfer.replayed:
            count("cx_held_cents", transfer.amount_cents, "euro cents held", partnership=request.partnership_id)
        return HoldFundsResult(held=True, transfer_id=transfer.id)

    @activity.defn(name="rehold_funds")
    async def rehold_funds(self, request: ReholdFundsInput) -> ReholdFundsResult:
        """Void the old hold and place the new one in one transaction; refused means nothing changed."""
        try:
            transfer = await self._store.rehold(
                idempotency_key=request.idempotency_key, hold_id=request.hold_id, amount_cents=request.amount_cents
            )
        except BudgetExhausted as refused:
            return ReholdFundsResult(held=False, available_cents=refused.available_cents)
        except LedgerError as error:
            raise as_application_error(error) from error
        return ReholdFundsResult(held=True, transfer_id=transfer.id)

    @activity.defn(name="void_hold")
    async def void_hold(self, request: VoidHoldInput) -> VoidHoldResult:
        try:
            transfer = await self._store.void(idempotency_key=request.idempotency_key, hold_id=request.hold_id)
        except LedgerError as error:
            raise as_application_error(error) from error
        return VoidHoldResult(transfer_id=transfer.id, released_cents=transfer.amount_cents)
