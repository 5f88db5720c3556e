"""Examples for the OpenAPI document: one per request body and per response (docs/adr/0009-rest-api.md).

Request examples are plain JSON, the way a caller writes them; tests/api/test_openapi.py parses each one
strictly against its model, so an example that the API would refuse fails the build. Response examples
are built from the response models themselves, so they cannot drift from them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel

from clients.api.models import (
    Accepted,
    AlreadyConfirmed,
    Decision,
    ExchangePage,
    ExchangeRow,
    ExplainedExchange,
    Explanation,
    Health,
    LedgerTransfer,
    Partnership,
    PolicyVersion,
    ReviewerRecord,
    ReviewerWithLoad,
    Started,
    TopUp,
    VisitClaim,
)
from ledger.evidence import EvidenceRecord
from ledger.review import InboxItem
from schemas.events import DeadlineKey, EventName
from schemas.exchange import ApplicationInput, EvidenceItem, ExchangeStatus, Party, Transition
from schemas.ledger import TransferKind
from schemas.messages import SIGNALS, UPDATES
from schemas.review import ReviewerRole
from schemas.review_state import AssignmentStatus, ReviewerState, ReviewState
from schemas.stages import Stage

APP_ID = "app-2026-0042"
PARTNERSHIP = "photonics4i"
SHA256 = "9f2c1d4e5b6a79880716253443526170819a8b7c6d5e4f30211203f4e5d6c7b8"
_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def contract_example(model: type[BaseModel]) -> dict[str, Any]:
    """A message's first example, as its contract model carries it (schemas/json/ exports the same one)."""
    examples: list[dict[str, Any]] = model.model_json_schema()["examples"]
    return examples[0]


# The start input and every update and signal: the contract models' own examples, never a second copy.
APPLICATION: dict[str, Any] = contract_example(ApplicationInput)
MESSAGE_EXAMPLES: dict[str, dict[str, Any]] = {
    name: contract_example(model) for name, model in {**UPDATES, **SIGNALS}.items()
}

REVIEWER: dict[str, Any] = {
    "reviewer_id": "photonics4i-reviewer-1",
    "name": "Anna Berg",
    "organisation_id": "org-photonics4i-member-1",
    "country": "SE",
    "partnership_id": PARTNERSHIP,
    "roles": ["reviewer"],
    "conflicts": ["org-lyon-optics"],
}
UNAVAILABILITY: dict[str, Any] = {"until": "2026-08-31"}
PARTNERSHIP_RECORD: dict[str, Any] = {"name": "Photonics4Industry"}
TOP_UP: dict[str, Any] = {"amount_cents": 2_500_000, "reference": "EISMEA-2026-014"}
POLICY_DRY_RUN: dict[str, Any] = {
    "toml": 'version = "2027.1"\neffective_from = 2027-01-01\ndescription = "Candidate: a higher cap"\n# ...\n'
}

# Responses ---------------------------------------------------------------------------------------------

EXCHANGE_STATUS = ExchangeStatus(
    application_id=APP_ID,
    stage=Stage.AGREEMENT,
    partnership_id=PARTNERSHIP,
    policy_version="2022.1",
    grant_cents=95_000,
    held_cents=95_000,
    hold_transfer_id=1042,
    deadlines={DeadlineKey.SIGNATURES: datetime(2026, 4, 3, 17, 0, tzinfo=UTC)},
    signatures={Party.HOST_ORGANISATION: "ho-signatory"},
    start_date=date(2026, 5, 4),
    end_date=date(2026, 5, 8),
    review=ReviewState(
        assignments=(
            ReviewerState(
                reviewer_id="photonics4i-reviewer-1", organisation_id="org-m1", status=AssignmentStatus.SUBMITTED
            ),
            ReviewerState(
                reviewer_id="photonics4i-reviewer-2", organisation_id="org-m2", status=AssignmentStatus.SUBMITTED
            ),
        ),
    ),
    history=(
        Transition(stage=Stage.SUBMITTED, at=_AT, actor_id="applicant-ola"),
        Transition(stage=Stage.SCREENING, at=_AT, actor_id="system"),
        Transition(stage=Stage.REVIEW, at=_AT, actor_id="system"),
        Transition(stage=Stage.FUNDING, at=_AT, actor_id="system", reason="approved: mean score 4.3"),
        Transition(stage=Stage.AGREEMENT, at=_AT, actor_id="system"),
    ),
).model_dump(mode="json")

STARTED = Started(application_id=APP_ID, workflow_id=f"exchange:{APP_ID}", replayed=False).model_dump(mode="json")
_ROW = ExchangeRow(
    application_id=APP_ID,
    stage="AGREEMENT",
    partnership_id=PARTNERSHIP,
    grant_cents=95_000,
    held_cents=95_000,
    paid_cents=0,
    next_deadline=datetime(2026, 4, 3, 17, 0, tzinfo=UTC),
)
EXCHANGE_PAGE = ExchangePage(items=[_ROW], limit=50, offset=0, next_offset=None).model_dump(mode="json")
ACCEPTED = Accepted(application_id=APP_ID, signal="confirm_payment").model_dump(mode="json")
ALREADY_CONFIRMED = AlreadyConfirmed(
    application_id=APP_ID,
    payment_order_id=f"po-{APP_ID}",
    payment_reference="SEPA-E2E-2026-0042",
    confirmed_by="finance-fia",
    confirmed_at=datetime(2026, 6, 20, 10, 5, tzinfo=UTC),
).model_dump(mode="json")
BUDGET = {
    "partnership_id": PARTNERSHIP,
    "allocated_cents": 46_949_266,
    "held_cents": 95_000,
    "paid_cents": 1_045_000,
    "available_cents": 45_809_266,
}
BUDGETS = [BUDGET]
PARTNERSHIPS = [Partnership(name="Photonics4Industry", **BUDGET).model_dump(mode="json")]
PARTNERSHIP_SAVED = PARTNERSHIPS[0]
TOPPED_UP = TopUp(
    partnership_id=PARTNERSHIP,
    amount_cents=2_500_000,
    reference="EISMEA-2026-014",
    transfer_id=2051,
    replayed=False,
    offered_to_waitlist=True,
).model_dump(mode="json")
EVIDENCE_ITEM = EvidenceItem(
    name="boarding-pass.pdf", kind="boarding_pass", sha256=SHA256, size_bytes=48213
).model_dump(mode="json")
EVIDENCE_RECORDS = [
    EvidenceRecord(
        sha256=SHA256,
        application_id=APP_ID,
        name="boarding-pass.pdf",
        kind="boarding_pass",
        media_type="application/pdf",
        size_bytes=48213,
        stored_at=datetime(2026, 5, 11, 8, 12, tzinfo=UTC),
        uploaded_by="applicant-ola",
    ).model_dump(mode="json")
]
EXPLANATION = Explanation(
    exchange=ExplainedExchange(
        application_id=APP_ID,
        stage="PAYMENT",
        partnership_id=PARTNERSHIP,
        visitor_org_id="org-krakow-photonics",
        policy_version="2022.1",
        grant_cents=95_000,
        held_cents=0,
        paid_cents=95_000,
    ),
    decisions=[
        Decision(
            sequence=3,
            event=EventName.SCREENING_DECIDED,
            stage="SCREENING",
            actor_id="system",
            reason="",
            policy_version="2022.1",
            details={"eligible": True, "failures": [], "input_digest": "sha256:4b1f..."},
            at=_AT,
        ),
        Decision(
            sequence=9,
            event=EventName.PRICED,
            stage="FUNDING",
            actor_id="system",
            reason="",
            policy_version="2022.1",
            details={"amount_cents": 95_000, "breakdown": ["France: 950 EUR lump sum for 5 days"]},
            at=_AT,
        ),
    ],
    visit_claims=[
        VisitClaim(application_id=APP_ID, claimed_at=_AT, released_at=None, release_reason=None, stage_now="PAYMENT")
    ],
).model_dump(mode="json")
LEDGER_HISTORY = [
    LedgerTransfer(
        id=1042,
        idempotency_key=f"{APP_ID}:hold:1",
        kind=TransferKind.HOLD,
        debit_account=f"budget:{PARTNERSHIP}",
        credit_account=f"exchange:{APP_ID}",
        amount_cents=95_000,
        pending_id=None,
        created_at=_AT,
    ).model_dump(mode="json")
]
REVIEWER_SAVED = ReviewerRecord(
    reviewer_id="photonics4i-reviewer-1",
    name="Anna Berg",
    organisation_id="org-photonics4i-member-1",
    country="SE",
    partnership_id=PARTNERSHIP,
    roles=[ReviewerRole.REVIEWER],
    conflicts=["org-lyon-optics"],
    unavailable_until=None,
).model_dump(mode="json")
REVIEWERS = [ReviewerWithLoad(**REVIEWER_SAVED, open_load=3).model_dump(mode="json")]
INBOX = [
    InboxItem(
        application_id=APP_ID,
        stage="REVIEW",
        partnership_id=PARTNERSHIP,
        assigned_at=_AT,
        due_at=datetime(2026, 3, 16, 17, 0, tzinfo=UTC),
    ).model_dump(mode="json")
]
POLICY_VERSIONS = [
    PolicyVersion(version="2022.1", effective_from=date(2022, 1, 1), description="ClusterXchange 2022 call").model_dump(
        mode="json"
    )
]
DRY_RUN = {
    "candidate_version": "2027.1",
    "exchanges": [],
    "partnerships": [
        {
            "partnership_id": PARTNERSHIP,
            "exchanges": 4,
            "becoming_ineligible": 0,
            "becoming_eligible": 0,
            "amount_changes": 2,
            "held_now_cents": 380_000,
            "held_candidate_cents": 400_000,
        }
    ],
}
HEALTH = Health().model_dump(mode="json")
