"""The API's own request and response bodies (the contract's models live in schemas/ and are reused as they are)."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ledger.errors import MAX_AMOUNT_CENTS
from schemas.ids import ActorId, OrganisationId, PartnershipId
from schemas.ledger import TransferKind
from schemas.organisations import CountryCode
from schemas.review import ReviewerRole
from schemas.text import ONE_LINE_PATTERN, Name


def _printable_reference(value: str) -> str:
    if not value.strip() or any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must hold more than spaces and no control characters")
    return value


# A decision's reference (top-ups), as `cx top-up --reference` takes it: 1 to 128 characters, not only
# spaces, no control characters; it becomes part of the ledger idempotency key `<partnership>:top-up:<ref>`.
# The JSON Schema says the same with the one-line pattern of schemas/text.py (no control character, not only spaces).
Reference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_printable_reference),
    Field(json_schema_extra={"pattern": ONE_LINE_PATTERN}),
]


class _Body(BaseModel):
    """Request bodies refuse unknown fields, like the contract's messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# Exchanges ---------------------------------------------------------------------------------------------


class Started(BaseModel):
    application_id: str
    workflow_id: str
    replayed: bool = Field(description="true when this application had already started this exchange")


class ExchangeRow(BaseModel):
    application_id: str
    stage: str
    partnership_id: str
    grant_cents: int | None
    held_cents: int
    paid_cents: int
    next_deadline: datetime | None


class ExchangePage(BaseModel):
    items: list[ExchangeRow]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last page")


class Accepted(BaseModel):
    application_id: str
    signal: str


class AlreadyConfirmed(BaseModel):
    """Finance's confirmation was already recorded with this reference: nothing was sent again."""

    application_id: str
    payment_order_id: str
    payment_reference: str
    confirmed_by: str | None
    confirmed_at: datetime | None
    already_confirmed: Literal[True] = True


class ExplainedExchange(BaseModel):
    application_id: str
    stage: str
    partnership_id: str
    visitor_org_id: str
    policy_version: str | None
    grant_cents: int | None
    held_cents: int
    paid_cents: int


class Decision(BaseModel):
    """One recorded decision (screening, pricing, hold, payment order, a stage entered with a reason)."""

    sequence: int
    event: str
    stage: str
    actor_id: str
    reason: str
    policy_version: str | None
    details: dict[str, Any] = Field(description="the rules, input digest, amounts and reasons as recorded")
    at: datetime


class VisitClaim(BaseModel):
    """A claim on the visitor organisation's one visit (R7), this exchange's own included."""

    application_id: str
    claimed_at: datetime
    released_at: datetime | None
    release_reason: str | None
    stage_now: str | None = Field(description="the claimant's stage now (null before the read model has it)")


class Explanation(BaseModel):
    """Why an exchange was decided as it was, read from the append-only audit trail (`cx explain --json`)."""

    exchange: ExplainedExchange
    decisions: list[Decision]
    visit_claims: list[VisitClaim] = Field(description="R7's facts: every claim of the visitor organisation's visit")


class LedgerTransfer(BaseModel):
    """One ledger booking of the exchange (`cx ledger history`)."""

    id: int
    idempotency_key: str
    kind: TransferKind
    debit_account: str
    credit_account: str
    amount_cents: int
    pending_id: int | None = Field(description="the hold a post or void resolves")
    created_at: AwareDatetime


# Budgets and partnerships ------------------------------------------------------------------------------


class Budget(BaseModel):
    partnership_id: str
    allocated_cents: int
    held_cents: int
    paid_cents: int
    available_cents: int


class Partnership(Budget):
    """A partnership: its record (name) and its budget; a partnership has one or the other, or both."""

    name: str | None = Field(description="null for a budget allocated without a partnership record")


class RegisterPartnershipInput(_Body):
    """Create a partnership's record, or rename it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "BIGINN"}]})

    # A name like any other of the contract (schemas/text.py): trimmed, 1 to 200 characters, one line. It was a
    # bare length, which let control characters through and which no pattern in the OpenAPI document described.
    name: Name


class TopUpInput(_Body):
    """More budget for a partnership from the programme; the same reference books once."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount_cents": 2_500_000, "reference": "EISMEA-014"}]})

    amount_cents: int = Field(gt=0, le=MAX_AMOUNT_CENTS, description="euro cents, an integer")
    reference: Reference = Field(description="the decision's reference; a repeat with it books nothing new")


class TopUp(BaseModel):
    partnership_id: str
    amount_cents: int
    reference: str
    transfer_id: int
    replayed: bool = Field(description="true when this reference had already booked this top-up")
    offered_to_waitlist: bool = Field(description="the partnership's waitlist was told that money was released")


# Reviewers ---------------------------------------------------------------------------------------------


class ReviewerRecord(BaseModel):
    """A reviewer or programme officer as recorded (roles and conflicts sorted, for a stable answer)."""

    reviewer_id: ActorId
    name: str
    organisation_id: OrganisationId
    country: CountryCode
    partnership_id: PartnershipId
    roles: list[ReviewerRole]
    conflicts: list[str]
    unavailable_until: date | None


class ReviewerWithLoad(ReviewerRecord):
    open_load: int = Field(ge=0, description="open assignments")


class UnavailabilityInput(_Body):
    """Away up to and including `until` (holidays); null: available again from now on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"until": "2026-08-31"}]})

    until: date | None


# Policy ------------------------------------------------------------------------------------------------


class PolicyVersion(BaseModel):
    version: str
    effective_from: date
    description: str


class PolicyDryRunInput(_Body):
    """A candidate policy, as the text of a policy file (TOML) or as the same document in JSON."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"toml": 'version = "2027.1"\neffective_from = 2027-01-01\n...'}]}
    )

    toml: Annotated[str, StringConstraints(min_length=1, max_length=200_000)] | None = None
    policy: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PolicyDryRunInput:
        if (self.toml is None) == (self.policy is None):
            raise ValueError("give exactly one of `toml` (the file's text) or `policy` (the document as JSON)")
        return self


# Probes ------------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"
