"""A person's data over HTTP (GDPR art. 15; issue 16, item 2): what `cx privacy export` prints, for officers only.

The document is ledger/privacy.py's: every row of the database naming the person (by the actor id in the
path and any `email` given), each with its source table, and what it leaves out and why. Reads only.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import ValidationError

from clients.api.context import Engine, Permit, permitted
from clients.api.openapi import example_response
from clients.api.problems import ProblemError, invalid, problem_responses
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
