"""Every non-retryable failure type the engine raises (ApplicationError.type), in two enums.

- `Refusal`: why a message from outside (a start, an update, a signal, a request) was refused. These
  are the stable, documented types other services branch on, whatever their SDK (docs/contract.md,
  "Refusals"): every refusal reaches any client as a non-retryable application failure of one of them.
- `ErrorType`: why an activity failed for good (ledger refusals and the like); not part of the contract's
  refusals, but non-retryable all the same.
"""

from enum import StrEnum

from temporalio.exceptions import ApplicationError


class Refusal(StrEnum):
    """Why a start, update, signal or request was refused; the message names the field or the stage."""

    INVALID_INPUT = "InvalidInput"  # the payload breaks the JSON Schema or a rule between its fields
    WRONG_STAGE = "WrongStage"  # the message is not accepted in the exchange's current stage
    NOT_ALLOWED = "NotAllowed"  # this actor may not do this (role, assignment, four-eyes, conflict)
    ALREADY_RECORDED = "AlreadyRecorded"  # the same decision was already taken (a party signed, a vote cast)
    DUPLICATE_APPLICATION = "DuplicateApplication"  # the application id already started an exchange
    AMENDMENT_REFUSED = "AmendmentRefused"  # new dates break a rule or the budget cannot cover them
    EVIDENCE_REFUSED = "EvidenceRefused"  # a report names a file never uploaded for this exchange


def refused(kind: Refusal, message: str) -> ApplicationError:
    """The one way to refuse: a non-retryable ApplicationError whose type is a Refusal."""
    return ApplicationError(message, type=kind.value, non_retryable=True)


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
    # The read model refused an event that passed validation: a bug, alerted on, never retried for hours.
    PROJECTION_REJECTED = "projection_rejected"
