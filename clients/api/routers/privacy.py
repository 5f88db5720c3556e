"""A person's data over HTTP (GDPR art. 15 and 17; issue 16, item 2): `cx privacy export` and `erase`, officers only.

The document is ledger/privacy.py's: every row of the database naming the person (by the actor id in the
path and any `email` given), each with its source table, and what it leaves out and why. Reads only.
The erasure is clients/erasure.py's: refused with 409 while the person is party to an open exchange.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clients.api.body import StrictBody
from clients.api.context import Engine, Permit, permitted
from clients.api.openapi import example_response
from clients.api.problems import ProblemError, invalid, problem_responses
from clients.erasure import ErasureReport, erase
from ledger.erasure import ErasureResult, PersonStillParty
from ledger.privacy import (
    NOT_INCLUDED,
    EmailAddress,
    ExportItem,
    ExportTooLarge,
    PersonalDataExport,
    export_person,
    person_from,
)
from ledger.privacy import PersonIdentifiers as Person

PersonPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=r"^[^\s\x00-\x1f\x7f/]+$",
        description="the person's actor id (submitted_by, reviewer or officer id, signatory) or e-mail address",
    ),
]

EXPORT_EXAMPLE = PersonalDataExport(
    person=Person(ids=["rev-anna"], emails=["anna@example.org"]),
    generated_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
    retention_version="2026.1",
    items=[
        ExportItem(
            source="reviewers",
            row={
                "reviewer_id": "rev-anna",
                "name": "Anna Nowak",
                "organisation_id": "org-krakow-photonics",
                "country": "PL",
                "partnership_id": "photonics4i",
                "roles": ["reviewer"],
                "conflicts": [],
                "unavailable_until": None,
                "created_at": "2026-02-02T08:00:00+00:00",
                "updated_at": "2026-02-02T08:00:00+00:00",
            },
        ),
        ExportItem(
            source="audit_events",
            row={
                "application_id": "app-2026-0042",
                "sequence": 5,
                "event": "review_submitted",
                "stage": "REVIEW",
                "actor_id": "rev-anna",
                "reason": "",
                "policy_version": "2022.1",
                "details": {"recommendation": "approve"},
                "at": "2026-03-02T09:30:00+00:00",
            },
        ),
    ],
    not_included=list(NOT_INCLUDED),
).model_dump(mode="json")

router = APIRouter(tags=["privacy"])


@router.get(
    "/privacy/people/{person}/export",
    response_model=PersonalDataExport,
    operation_id="exportPersonalData",
    summary="Every row that names a person, with its source table (GDPR art. 15); officers only; reads only",
    responses={**example_response(EXPORT_EXAMPLE, "the person's data"), **problem_responses(401, 403, 422, 503)},
)
async def export_personal_data(
    person: PersonPath,
    api: Engine,
    permit: Annotated[Permit, permitted("exportPersonalData")],
    email: Annotated[
        list[EmailAddress] | None, Query(max_length=20, description="the person's e-mail addresses")
    ] = None,
) -> PersonalDataExport:
    try:
        identifiers = person_from([person], email or [])
    except ValidationError as error:
        raise invalid([(".".join(map(str, e["loc"])), e["msg"]) for e in error.errors()]) from None
    async with api.pool.acquire() as conn:
        try:
            return await export_person(conn, identifiers)
        except ExportTooLarge as error:
            raise ProblemError(422, "Export too large", str(error)) from None


class ErasureRequest(BaseModel):
    """Why the person is erased: a lawful request's reference, or the end of a retention period."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")
    email: list[EmailAddress] = Field(default_factory=list, max_length=20, description="the person's addresses")


ERASURE_REQUEST_EXAMPLE = {"reason": "request DPO-2026-17", "email": ["anna@example.org"]}

ERASURE_EXAMPLE = ErasureReport(
    erasure=ErasureResult(
        person_ref="psn_5f0c1e2a9b8d4c3e8f7a6b5c4d3e2f10",
        erased_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
        erased_by="officer-olga",
        reason="request DPO-2026-17",
        already_erased=False,
        keys_destroyed=1,
        rows_pseudonymised=14,
        application_ids=["app-2026-0042"],
    ),
    histories_deleted=["exchange:app-2026-0042"],
    histories_kept={},
).model_dump(mode="json")


@router.post(
    "/privacy/people/{person}/erasure",
    response_model=ErasureReport,
    operation_id="erasePerson",
    summary="Erase a person (GDPR art. 17): keys destroyed, ids pseudonymised, histories deleted; the money "
    "trail stays; officers only; 409 while party to an open exchange",
    responses={
        **example_response(ERASURE_EXAMPLE, "what was erased"),
        **problem_responses(401, 403, 409, 413, 415, 422, 503),
    },
)
async def erase_personal_data(
    person: PersonPath,
    erasure: Annotated[ErasureRequest, Depends(StrictBody(ErasureRequest, ERASURE_REQUEST_EXAMPLE))],
    api: Engine,
    permit: Annotated[Permit, permitted("erasePerson")],
) -> ErasureReport:
    try:
        identifiers = person_from([person], erasure.email)
    except ValidationError as error:
        raise invalid([(".".join(map(str, e["loc"])), e["msg"]) for e in error.errors()]) from None
    try:
        return await erase(
            api.pool,
            api.exchanges.temporal,
            identifiers.actor_ids(),
            identifiers.addresses(),
            permit.who.subject,
            erasure.reason,
        )
    except PersonStillParty as error:
        raise ProblemError(409, "Person still party to an open exchange", str(error)) from None
