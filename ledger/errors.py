"""Typed refusals of the ledger: each names the field or the ids involved, and writes nothing.

Every class carries a stable snake_case `code` (used as the Temporal ApplicationError type, see
schemas/errors.py) and the SQLSTATE that the ledger functions raise for it (class CX, see
ledger/migrations/0001_ledger.sql). The functions put the constructor arguments in the error's DETAIL
as JSON, so `from_postgres` rebuilds the same exception the Python-side validation would raise.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

MAX_AMOUNT_CENTS = 1_000_000_000_000  # 10 billion euros per transfer; the SQL domain has the same bound


class LedgerError(Exception):
    """A request the ledger refused. Retrying the same request cannot succeed."""

    code: ClassVar[str] = "ledger_error"
    sqlstate: ClassVar[str] = ""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._fields = fields

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the keyword fields, so the error survives pickling (e.g. across processes).
        return (_rebuild, (type(self), self._fields))

    @property
    def fields(self) -> dict[str, Any]:
        """The structured details (the constructor's arguments)."""
        return dict(self._fields)


def _rebuild(cls: type[LedgerError], fields: dict[str, Any]) -> LedgerError:
    return cls(**fields)


class InvalidRequest(LedgerError):
    """A malformed field: an empty or over-long id or key, or an exchange funded from another budget."""

    code = "invalid_request"
    sqlstate = "CX001"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason)
        self.field = field
        self.reason = reason


class InvalidAmount(InvalidRequest):
    """An amount that is not a whole number of cents from 1 to MAX_AMOUNT_CENTS."""

    code = "invalid_amount"
    sqlstate = "CX002"

    def __init__(self, field: str, amount_cents: object) -> None:
        reason = f"must be a whole number of cents from 1 to {MAX_AMOUNT_CENTS}, got {amount_cents!r}"
        LedgerError.__init__(self, f"{field}: {reason}", field=field, amount_cents=amount_cents)
        self.field = field
        self.reason = reason
        self.amount_cents = amount_cents


class UnknownAccount(LedgerError):
    """The account the request names does not exist (no allocation yet, or nothing ever held)."""

    code = "unknown_account"
    sqlstate = "CX003"

    def __init__(self, account: str) -> None:
        super().__init__(f"account {account} does not exist", account=account)
        self.account = account


class BudgetExhausted(LedgerError):
    """The partnership's budget cannot cover the hold, counting the holds already pending."""

    code = "budget_exhausted"
    sqlstate = "CX004"

    def __init__(self, partnership_id: str, requested_cents: int, available_cents: int) -> None:
        super().__init__(
            f"budget:{partnership_id} cannot hold {requested_cents} cents: {available_cents} cents available",
            partnership_id=partnership_id,
            requested_cents=requested_cents,
            available_cents=available_cents,
        )
        self.partnership_id = partnership_id
        self.requested_cents = requested_cents
        self.available_cents = available_cents


class HoldNotFound(LedgerError):
    """The hold id names no transfer, or a transfer that is not a hold (`actual_kind`)."""

    code = "hold_not_found"
    sqlstate = "CX005"

    def __init__(self, hold_id: int, actual_kind: str | None = None) -> None:
        message = (
            f"hold #{hold_id} does not exist"
            if actual_kind is None
            else f"transfer #{hold_id} is not a hold: its kind is {actual_kind}"
        )
        super().__init__(message, hold_id=hold_id, actual_kind=actual_kind)
        self.hold_id = hold_id
        self.actual_kind = actual_kind


class HoldAlreadyResolved(LedgerError):
    """The hold was already posted or voided: a hold resolves at most once."""

    code = "hold_already_resolved"
    sqlstate = "CX006"

    def __init__(self, hold_id: int, resolution_kind: str, resolution_id: int) -> None:
        super().__init__(
            f"hold #{hold_id} was already resolved by {resolution_kind} #{resolution_id}",
            hold_id=hold_id,
            resolution_kind=resolution_kind,
            resolution_id=resolution_id,
        )
        self.hold_id = hold_id
        self.resolution_kind = resolution_kind
        self.resolution_id = resolution_id


class AmountExceedsHold(LedgerError):
    """A post asked for more than the hold reserved."""

    code = "amount_exceeds_hold"
    sqlstate = "CX007"

    def __init__(self, hold_id: int, requested_cents: int, hold_cents: int) -> None:
        super().__init__(
            f"amount_cents {requested_cents} exceeds hold #{hold_id} of {hold_cents} cents",
            hold_id=hold_id,
            requested_cents=requested_cents,
            hold_cents=hold_cents,
        )
        self.hold_id = hold_id
        self.requested_cents = requested_cents
        self.hold_cents = hold_cents


class PayoutExceedsPosted(LedgerError):
    """A pay-out asked for more than was posted to the exchange and not yet paid out."""

    code = "payout_exceeds_posted"
    sqlstate = "CX008"

    def __init__(self, application_id: str, requested_cents: int, available_cents: int) -> None:
        super().__init__(
            f"exchange:{application_id} cannot pay out {requested_cents} cents: "
            f"{available_cents} cents posted and not yet paid out",
            application_id=application_id,
            requested_cents=requested_cents,
            available_cents=available_cents,
        )
        self.application_id = application_id
        self.requested_cents = requested_cents
        self.available_cents = available_cents


class IdempotencyConflict(LedgerError):
    """The key was already used for a different request; replays must repeat the request exactly."""

    code = "idempotency_conflict"
    sqlstate = "CX009"

    def __init__(self, idempotency_key: str, existing: str, requested: str) -> None:
        super().__init__(
            f"idempotency key {idempotency_key!r} was already used for {existing}; "
            f"this request ({requested}) differs: use a new key",
            idempotency_key=idempotency_key,
            existing=existing,
            requested=requested,
        )
        self.idempotency_key = idempotency_key
        self.existing = existing
        self.requested = requested


_BY_SQLSTATE: dict[str, type[LedgerError]] = {
    cls.sqlstate: cls
    for cls in (
        InvalidRequest,
        InvalidAmount,
        UnknownAccount,
        BudgetExhausted,
        HoldNotFound,
        HoldAlreadyResolved,
        AmountExceedsHold,
        PayoutExceedsPosted,
        IdempotencyConflict,
    )
}

ALL_ERROR_CODES: frozenset[str] = frozenset(cls.code for cls in _BY_SQLSTATE.values())


# The SQL functions name an exchange's id as their columns do (`exchange_id`, the id of the `exchange:<id>`
# account); Python names it as the contract does, `application_id` (docs/adr/0015-stage-names-and-one-business-id.md).
_PYTHON_NAMES = {"exchange_id": "application_id"}


def from_postgres(sqlstate: str | None, detail: str | None) -> LedgerError | None:
    """The ledger error a function raised (SQLSTATE class CX), or None for any other database error."""
    cls = _BY_SQLSTATE.get(sqlstate or "")
    if cls is None:
        return None
    fields = {_PYTHON_NAMES.get(key, key): value for key, value in json.loads(detail or "{}").items()}
    if fields.get("field") in _PYTHON_NAMES:
        fields["field"] = _PYTHON_NAMES[fields["field"]]
    return cls(**fields)
