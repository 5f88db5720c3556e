"""Every non-retryable failure type the engine raises, as one enum (ApplicationError.type)."""

from enum import StrEnum


class ErrorType(StrEnum):
    INVALID_INPUT = "invalid_input"
    DUPLICATE_APPLICATION = "duplicate_application"
    # Ledger refusals (values equal the `code` of ledger.errors classes; a test keeps them in step).
    INVALID_REQUEST = "invalid_request"
    INVALID_AMOUNT = "invalid_amount"
    UNKNOWN_ACCOUNT = "unknown_account"
    BUDGET_EXHAUSTED = "budget_exhausted"
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_ALREADY_RESOLVED = "hold_already_resolved"
    AMOUNT_EXCEEDS_HOLD = "amount_exceeds_hold"
    PAYOUT_EXCEEDS_POSTED = "payout_exceeds_posted"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
