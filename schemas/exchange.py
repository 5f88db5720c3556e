"""The Exchange workflow's contract: its input, updates, signals, query result and outcome."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator

from schemas.ids import ActorId, ApplicationId, PartnershipId, PartyId
from schemas.organisations import Organisation
from schemas.review_state import ReviewState
from schemas.stages import Stage
from schemas.text import (
    ONE_LINE_PATTERN,
    Criterion,
    FileName,
    Line,
    OptionalText,
    PlausibleDate,
    PlausibleInstant,
    PolicyVersion,
    RequiredText,
)

# Free text: trimmed, at most 2,000 characters, no control characters but tab and line breaks; a required
# text holds more than whitespace (schemas/text.py; the JSON Schema's pattern says the same).
ShortText = OptionalText
Reason = RequiredText


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def examples(*payloads: dict[str, JsonValue], **schema: Any) -> ConfigDict:
    """A message's examples, as other services write them: exported with its JSON Schema (schemas/json/),
    shown in the OpenAPI document, and decoded strictly by tests/test_contract*.py. `schema` adds keywords
    for rules between fields that a JSON Schema can state (if/then)."""
    return ConfigDict(json_schema_extra={"examples": list(payloads), **schema})


ON_BEHALF_OF = (
    "the organisation or partnership the actor represents: required (refused with InvalidInput when missing); "
    "it must be this exchange's own for the party or side (refused with NotAllowed otherwise). Optional in the "
    "schema only so that exchanges recorded before it still replay"
)


APPLICATION_EXAMPLE: dict[str, JsonValue] = {
    "application_id": "app-2026-0042",
    "visitor": {
        "organisation_id": "org-krakow-photonics",
        "name": "Krakow Photonics Cluster",
        "type": "cluster_organisation",
        "country": "PL",
        "latitude": 50.0647,
        "longitude": 19.945,
    },
    "host": {
        "organisation_id": "org-lyon-optics",
        "name": "Lyon Optics Hub",
        "type": "scale_up_support",
        "country": "FR",
        "latitude": 45.764,
        "longitude": 4.8357,
        "cluster_member": True,
    },
    "visitor_partnership_id": "photonics4i",
    "host_partnership_id": "photonics4i",
    "start_date": "2027-03-01",
    "end_date": "2027-03-05",
    "goals": "Learn how the host runs its shared clean-room.",
    "submitted_by": "crm-photonics",
}


# The application's fields that are a person's free text: sealed under the submitter's key in the read model
# (activities/projection.py, ledger/persons.py) and gone with the submitter's erasure. Organisations are legal
# persons, kept as the grant's record (docs/privacy.md).
PERSONAL_APPLICATION_FIELDS = ("goals",)


class ApplicationInput(_Message):
    """Start input of the Exchange workflow: one application for one exchange.

    Rules between fields that a JSON Schema cannot say, checked where the input enters: `end_date` is not
    before `start_date`; `host.organisation_id` differs from `visitor.organisation_id`; `submitted_at` is
    not after the workflow's start; `policy_version`, when given, is a version on file.
    """

    model_config = examples(
        APPLICATION_EXAMPLE,
        {  # an officer's import of an existing record: every optional field set
            **APPLICATION_EXAMPLE,
            "application_id": "app-2026-0007",
            "visitor": {
                "organisation_id": "org-brno-sme",
                "name": "Brno Precision Optics s.r.o.",
                "type": "sme",
                "country": "CZ",
                "latitude": 49.1951,
                "longitude": 16.6068,
                "member_of_profiled_cluster": True,
                "cluster_member": True,
            },
            "host_agency_approved": False,
            "submitted_by": "officer-olga",
            "submitted_at": "2026-11-20T09:30:00Z",
            "policy_version": "2022.1",
        },
        # A rule between fields that JSON Schema can state: an approval carries the agency's reference.
        **{
            "if": {"properties": {"host_agency_approved": {"const": True}}, "required": ["host_agency_approved"]},
            "then": {
                # Present and not null: the Line it is otherwise (schemas/text.py), stated whole so the
                # document bounds every string a caller sends (issue 16).
                "properties": {
                    "host_agency_approval_reference": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": ONE_LINE_PATTERN,
                    }
                },
                "required": ["host_agency_approval_reference"],
            },
        },
    )

    application_id: ApplicationId
    visitor: Organisation
    host: Organisation
    visitor_partnership_id: PartnershipId = Field(description="R9: the exchange counts (and is paid) here")
    host_partnership_id: PartnershipId
    start_date: PlausibleDate = Field(description="first day of the stay (travel days excluded)")
    end_date: PlausibleDate = Field(description="last day of the stay, inclusive")
    host_agency_approved: bool = Field(
        default=False,
        description="R3: the agency approved in advance a host SME that is not a member of a profiled cluster. "
        "An officer's field, recorded in the audit trail; requires host_agency_approval_reference",
    )
    host_agency_approval_reference: Line | None = Field(
        default=None, description="the agency's decision approving the host (its reference), when approved"
    )
    goals: ShortText = ""
    submitted_by: ActorId
    submitted_at: PlausibleInstant | None = Field(
        default=None,
        description="original submission instant for an officer's import of an existing record; "
        "defaults to the moment the workflow starts. Never in the future.",
    )
    policy_version: PolicyVersion | None = Field(default=None, description="defaults to the policy in force")

    @model_validator(mode="after")
    def _dates_in_order(self) -> ApplicationInput:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        if self.visitor.organisation_id == self.host.organisation_id:
            raise ValueError("host.organisation_id must differ from visitor.organisation_id")
        if self.host_agency_approved and not self.host_agency_approval_reference:
            raise ValueError("host_agency_approval_reference is required when host_agency_approved is true")
        return self

    def officer_fields(self) -> dict[str, object]:
        """The fields only an officer (or the import of an earlier record) may set, where set."""
        fields = {
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "policy_version": self.policy_version,
            "host_agency_approved": self.host_agency_approved or None,
            "host_agency_approval_reference": self.host_agency_approval_reference,
        }
        return {name: value for name, value in fields.items() if value is not None}


class Recommendation(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class SubmitReviewInput(_Message):
    model_config = examples(
        {
            "actor_id": "rev-anna",
            "recommendation": "approve",
            "scores": {"relevance": 4, "agenda_quality": 4, "expected_impact": 5},
            "comment": "A clear agenda with measurable goals.",
        }
    )

    actor_id: ActorId
    recommendation: Recommendation = Field(description="reject is a veto")
    scores: dict[Criterion, int] = Field(
        default_factory=dict,
        max_length=20,
        description="one score per rubric criterion of the policy (policy.review.criteria)",
    )
    comment: ShortText = ""


class Party(StrEnum):
    """Signatories of the Commitment to Quality (R10)."""

    HOST_ORGANISATION = "HO"
    HOST_PARTNERSHIP = "HOP"
    VISITOR_ORGANISATION = "VO"
    VISITOR_PARTNERSHIP = "VOP"


class SignCommitmentInput(_Message):
    """R10: one party's signature of the Commitment to Quality, by someone of that party."""

    model_config = examples({"actor_id": "ho-hanna", "party": "HO", "on_behalf_of": "org-lyon-optics"})

    actor_id: ActorId
    party: Party
    on_behalf_of: PartyId | None = Field(
        default=None,
        description="HO: the host organisation; VO: the visitor organisation; HOP: the host partnership; VOP: the "
        f"visitor partnership. {ON_BEHALF_OF}",
    )


class EvidenceItem(_Message):
    name: FileName
    kind: Literal["boarding_pass", "travel_invoice", "accommodation_invoice", "other"]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", min_length=64, max_length=64)]
    size_bytes: int = Field(gt=0)


class ConfirmMatchInput(_Message):
    """R10: host and visitor each confirm the match before the Commitment to Quality binds them."""

    model_config = examples({"actor_id": "ho-hanna", "side": "host", "on_behalf_of": "org-lyon-optics"})

    actor_id: ActorId
    side: Literal["host", "visitor"]
    on_behalf_of: PartyId | None = Field(
        default=None, description=f"the host or visitor organisation, by side. {ON_BEHALF_OF}"
    )


class AmendDatesInput(_Message):
    """New dates before the stay starts: screened and priced again; the hold follows in one transaction.

    `end_date` must not be before `start_date` (a rule the JSON Schema cannot say)."""

    model_config = examples(
        {
            "actor_id": "vo-vera",
            "start_date": "2027-03-08",
            "end_date": "2027-03-12",
            "reason": "host moved the lab week",
        }
    )

    actor_id: ActorId
    start_date: PlausibleDate
    end_date: PlausibleDate
    reason: Reason

    @model_validator(mode="after")
    def _dates_in_order(self) -> AmendDatesInput:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class ConfirmAttendanceInput(_Message):
    """The host confirms the visitor came; a shortened stay carries its actual last day."""

    model_config = examples({"actor_id": "ho-hanna"}, {"actor_id": "ho-hanna", "actual_end_date": "2027-03-04"})

    actor_id: ActorId
    actual_end_date: PlausibleDate | None = None


class ReportNoShowInput(_Message):
    model_config = examples({"actor_id": "ho-hanna", "reason": "the visitor did not arrive"})

    actor_id: ActorId
    reason: Reason


class SubmitReportInput(_Message):
    model_config = examples(
        {
            "actor_id": "vo-vera",
            "summary": "Met the clean-room team; agreed a joint training plan.",
            "evidence": [
                {
                    "name": "boarding-pass.pdf",
                    "kind": "boarding_pass",
                    "sha256": "9f2c1d4e5b6a79880716253443526170819a8b7c6d5e4f30211203f4e5d6c7b8",
                    "size_bytes": 48213,
                }
            ],
        }
    )

    actor_id: ActorId
    summary: Reason
    actual_end_date: PlausibleDate | None = Field(default=None, description="when the stay was shortened")
    evidence: tuple[EvidenceItem, ...] = Field(min_length=1)


class ReportDecision(StrEnum):
    ACCEPT = "accept"
    RETURN = "return"


class ValidateReportInput(_Message):
    """The VOP's decision on a report; `reasons` is required when it is returned (the JSON Schema says so too)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"actor_id": "vop-victor", "decision": "accept", "on_behalf_of": "photonics4i"},
                {
                    "actor_id": "vop-victor",
                    "decision": "return",
                    "reasons": "the invoice is not legible",
                    "on_behalf_of": "photonics4i",
                },
            ],
            # A rule between fields that JSON Schema can say: a returned report carries its reasons.
            "if": {"properties": {"decision": {"const": "return"}}, "required": ["decision"]},
            "then": {"properties": {"reasons": {"pattern": "\\S"}}, "required": ["reasons"]},
        }
    )
    actor_id: ActorId
    decision: ReportDecision
    reasons: ShortText = ""
    on_behalf_of: PartyId | None = Field(
        default=None, description=f"the visitor's partnership (VOP), which validates reports. {ON_BEHALF_OF}"
    )

    @model_validator(mode="after")
    def _return_needs_reasons(self) -> ValidateReportInput:
        if self.decision is ReportDecision.RETURN and not self.reasons:
            raise ValueError("reasons: required when the report is returned")
        return self


class WithdrawInput(_Message):
    model_config = examples({"actor_id": "vo-vera", "reason": "the traveller fell ill"})

    actor_id: ActorId
    reason: Reason


class CancelInput(_Message):
    model_config = examples({"actor_id": "officer-olga", "reason": "the host closed the facility"})

    actor_id: ActorId
    reason: Reason


class ConfirmPaymentInput(_Message):
    """Signal from finance: the payment order was executed.

    It names the order and its amount as finance received them (the webhook's `payment_order_id` and
    `amount_cents`), so it counts only for this exchange's order, for exactly that amount, in PAYMENT.
    """

    model_config = examples(
        {
            "payment_order_id": "po-app-2026-0042",
            "amount_cents": 95000,
            "payment_reference": "SEPA-2027-000123",
            "confirmed_by": "finance-fia",
        }
    )

    payment_order_id: Line = Field(
        description="the order being confirmed, as in the payment order webhook (po-<application id>)"
    )
    amount_cents: int = Field(gt=0, description="the amount executed, in euro cents; must equal the order's")
    payment_reference: Line = Field(
        description="finance's reference of the executed transfer (e.g. the SEPA end-to-end id)"
    )
    confirmed_by: ActorId


class Transition(_Message):
    stage: Stage
    at: datetime
    actor_id: str
    reason: str = ""


class RuleFailure(_Message):
    rule: str = Field(description="rule id, e.g. R5")
    field: str = Field(description="the input field the rule looked at")
    message: str = Field(description="a sentence a programme officer can forward to the applicant")


class ExchangeStatus(_Message):
    """The `status` query: where the exchange is and how it got there."""

    application_id: str
    stage: Stage
    partnership_id: str
    policy_version: str | None = None
    grant_cents: int | None = Field(default=None, description="the priced lump sum (R8)")
    held_cents: int = 0
    paid_cents: int = 0
    hold_transfer_id: int | None = None
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    signatures: dict[Party, str] = Field(default_factory=dict)
    parties: dict[Party, str] = Field(
        default_factory=dict,
        description="R10's parties: the organisation (HO, VO) or partnership (HOP, VOP) each is; what `on_behalf_of` "
        "must name in sign_commitment, confirm_match and validate_report",
    )
    match_confirmed_by: dict[str, str] = Field(default_factory=dict, description="side (host/visitor) -> actor")
    start_date: date | None = None
    end_date: date | None = None
    stay_started: bool = False
    attendance_confirmed_by: str | None = None
    actual_end_date: PlausibleDate | None = None
    report_submitted: bool = Field(default=False, description="a report waits for the VOP's validation")
    screening_failures: tuple[RuleFailure, ...] = ()
    payment_order_id: str | None = None
    payment_reference: str | None = None
    alerts: tuple[str, ...] = ()
    review: ReviewState | None = None
    history: tuple[Transition, ...] = ()


class ExchangeOutcome(_Message):
    """The workflow's result: the terminal stage and why."""

    application_id: str
    stage: Stage
    reason: str
    grant_cents: int | None
    paid_cents: int
