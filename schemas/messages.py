"""Every message the Exchange workflow accepts, by its wire name: one registry for the client and the contract.

The workflow's handlers carry the same names (a test compares them), so adding an update means
adding it here, where the exported JSON Schemas (schemas/json/) and `ExchangeClient.decide` find it.
"""

from __future__ import annotations

from pydantic import BaseModel

from schemas.exchange import (
    AmendDatesInput,
    CancelInput,
    ConfirmAttendanceInput,
    ConfirmMatchInput,
    ConfirmPaymentInput,
    ReportNoShowInput,
    SignCommitmentInput,
    SubmitReportInput,
    SubmitReviewInput,
    ValidateReportInput,
    WithdrawInput,
)
from schemas.funding import FundsHeldInput
from schemas.review import (
    AmendApplicationInput,
    DeclareConflictInput,
    ExtendReviewDeadlineInput,
    OverrideInput,
    ReassignInput,
    ReopenInput,
    RequestChangesInput,
)

UPDATES: dict[str, type[BaseModel]] = {
    "submit_review": SubmitReviewInput,
    "declare_conflict": DeclareConflictInput,
    "request_changes": RequestChangesInput,
    "amend_application": AmendApplicationInput,
    "reassign": ReassignInput,
    "override": OverrideInput,
    "extend_review_deadline": ExtendReviewDeadlineInput,
    "reopen": ReopenInput,
    "confirm_match": ConfirmMatchInput,
    "sign_commitment": SignCommitmentInput,
    "amend_dates": AmendDatesInput,
    "confirm_attendance": ConfirmAttendanceInput,
    "report_no_show": ReportNoShowInput,
    "submit_report": SubmitReportInput,
    "validate_report": ValidateReportInput,
    "withdraw": WithdrawInput,
    "cancel": CancelInput,
}

SIGNALS: dict[str, type[BaseModel]] = {
    "confirm_payment": ConfirmPaymentInput,
    "funds_held": FundsHeldInput,
}
