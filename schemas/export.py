"""Export the contract's JSON Schemas to schemas/json/ (run: python -m schemas.export).

Other services, in any language, code against these files; tests/test_contract.py fails when they
drift from the models, so they are regenerated with the models, never edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.exchange import (
    AmendDatesInput,
    ApplicationInput,
    CancelInput,
    ConfirmAttendanceInput,
    ConfirmMatchInput,
    ConfirmPaymentInput,
    ExchangeOutcome,
    ExchangeStatus,
    OfferFundsInput,
    ReportNoShowInput,
    SignCommitmentInput,
    SubmitReportInput,
    SubmitReviewInput,
    ValidateReportInput,
    WithdrawInput,
)
from schemas.review import (
    AmendApplicationInput,
    DeclareConflictInput,
    ExtendReviewDeadlineInput,
    OverrideInput,
    ReassignInput,
    ReopenInput,
    RequestChangesInput,
)

JSON_DIR = Path(__file__).parent / "json"

# file stem -> model: the workflow's start input, every update, signal and query, and its result.
CONTRACT: dict[str, type[BaseModel]] = {
    "start.ApplicationInput": ApplicationInput,
    "update.submit_review": SubmitReviewInput,
    "update.sign_commitment": SignCommitmentInput,
    "update.submit_report": SubmitReportInput,
    "update.validate_report": ValidateReportInput,
    "update.withdraw": WithdrawInput,
    "update.confirm_match": ConfirmMatchInput,
    "update.amend_dates": AmendDatesInput,
    "update.confirm_attendance": ConfirmAttendanceInput,
    "update.report_no_show": ReportNoShowInput,
    "update.declare_conflict": DeclareConflictInput,
    "update.request_changes": RequestChangesInput,
    "update.amend_application": AmendApplicationInput,
    "update.reassign": ReassignInput,
    "update.override": OverrideInput,
    "update.extend_review_deadline": ExtendReviewDeadlineInput,
    "update.reopen": ReopenInput,
    "update.cancel": CancelInput,
    "signal.confirm_payment": ConfirmPaymentInput,
    "signal.offer_funds": OfferFundsInput,
    "query.status": ExchangeStatus,
    "result.ExchangeOutcome": ExchangeOutcome,
}


def rendered() -> dict[str, str]:
    return {
        f"{stem}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for stem, model in CONTRACT.items()
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (JSON_DIR / name).write_text(text)
    print(f"wrote {len(CONTRACT)} schemas to {JSON_DIR}")


if __name__ == "__main__":
    main()
