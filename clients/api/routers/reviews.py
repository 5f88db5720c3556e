"""REVIEW's people over HTTP: reviewers and programme officers, their unavailability, and each one's inbox.

The same SQL-level functions as `cx reviewers ...` and `cx review inbox` (ledger/review.py); the
workflow stays the source of truth for decisions, these rows serve inboxes and load balancing.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from clients.api import examples, idempotency
from clients.api.body import StrictBody
from clients.api.context import Engine, Permit, permitted
from clients.api.idempotency import Answer, body_sha256
from clients.api.models import ReviewerRecord, ReviewerWithLoad, UnavailabilityInput
from clients.api.openapi import JSON, example_response
from clients.api.problems import ProblemError, forbidden, not_found, problem_responses
from clients.api.routers.exchanges import IdempotencyKey
from ledger.review import InboxItem, UnknownReviewer, add_reviewer, get_reviewer, inbox, list_reviewers, set_unavailable
from schemas.ids import _ID_PATTERN, ID_MAX_LENGTH, ID_MIN_LENGTH
from schemas.review import Reviewer

# Reviewer ids are people's ids (often a login): any 1-128 characters without control characters or
# slashes, the same as the contract's ActorId allows for the text, minus what cannot sit in a path.
ReviewerIdPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f/]+$", description="the reviewer's id")
]

router = APIRouter(tags=["reviews"])


def _record(reviewer: Reviewer) -> ReviewerRecord:
    # Sets have no order: sorted, so that the answer is stable and diffable.
    return ReviewerRecord(
        reviewer_id=reviewer.reviewer_id,
        name=reviewer.name,
        organisation_id=reviewer.organisation_id,
        country=reviewer.country,
        partnership_id=reviewer.partnership_id,
        roles=sorted(reviewer.roles),
        conflicts=sorted(reviewer.conflicts),
        unavailable_until=reviewer.unavailable_until,
    )


def _unknown(reviewer_id: str) -> ProblemError:
    return not_found("Reviewer", "reviewer_id", str(UnknownReviewer(reviewer_id)))


@router.get(
    "/reviewers",
    response_model=list[ReviewerWithLoad],
    operation_id="listReviewers",
    summary="Reviewers and programme officers with their open load, by partnership then id",
    responses={**example_response(examples.REVIEWERS, "the records"), **problem_responses(401, 403, 422, 503)},
)
async def reviewers(
    api: Engine,
    permit: Annotated[Permit, permitted("listReviewers")],
    partnership: Annotated[
        str | None,
        Query(
            pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH, description="only this partnership"
        ),
    ] = None,
) -> list[ReviewerWithLoad]:
    async with api.pool.acquire() as conn:
        loads = await list_reviewers(conn, partnership)
    return [ReviewerWithLoad(**_record(r).model_dump(), open_load=r.open_load) for r in loads]


@router.post(
    "/reviewers",
    response_model=ReviewerRecord,
    status_code=201,
    operation_id="addReviewer",
    summary="Add a reviewer or programme officer; the same id again updates the record (a holiday stays)",
    responses={
        **example_response(examples.REVIEWER_SAVED, "added", 201),
        200: {
            "model": ReviewerRecord,
            "description": "updated (the id existed)",
            "content": {JSON: {"example": examples.REVIEWER_SAVED}},
        },
        **problem_responses(401, 403, 409, 413, 415, 422, 503),
    },
)
async def add(
    api: Engine,
    permit: Annotated[Permit, permitted("addReviewer")],
    body: Annotated[Reviewer, Depends(StrictBody(Reviewer, examples.REVIEWER))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    request = idempotency.Request(
        idempotency_key, permit.who.subject, "POST /reviewers", "", body_sha256(body.model_dump(mode="json"))
    )

    async def save() -> Answer:
        async with api.pool.acquire() as conn, conn.transaction():
            created = await add_reviewer(conn, body)
            saved = await get_reviewer(conn, body.reviewer_id)
        assert saved is not None, "just written"
        return Answer(201 if created else 200, _record(saved).model_dump(mode="json"))

    return await idempotency.once(api.pool, request, api.request_deadline_s, save)


@router.put(
    "/reviewers/{reviewer_id}/unavailability",
    response_model=ReviewerRecord,
    operation_id="setReviewerUnavailability",
    summary="Keep a reviewer out of new assignments up to and including a day (officers; a reviewer for themself)",
    responses={
        **example_response({**examples.REVIEWER_SAVED, "unavailable_until": "2026-08-31"}, "the record now"),
        **problem_responses(401, 403, 404, 413, 415, 422, 503),
    },
)
async def set_unavailability(
    reviewer_id: ReviewerIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("setReviewerUnavailability")],
    body: Annotated[UnavailabilityInput, Depends(StrictBody(UnavailabilityInput, examples.UNAVAILABILITY))],
) -> ReviewerRecord:
    if permit.cell.own_record and permit.who.subject != reviewer_id:
        raise forbidden(f"a reviewer sets only their own unavailability ({permit.who.subject!r})", "reviewer_id")
    async with api.pool.acquire() as conn, conn.transaction():
        try:
            await set_unavailable(conn, reviewer_id, body.until)
        except UnknownReviewer:
            raise _unknown(reviewer_id) from None
        saved = await get_reviewer(conn, reviewer_id)
    assert saved is not None, "just updated"
    return _record(saved)


@router.get(
    "/reviewers/{reviewer_id}/inbox",
    response_model=list[InboxItem],
    operation_id="getReviewInbox",
    summary="What waits for a reviewer, oldest deadline first (a reviewer: only their own)",
    responses={
        **example_response(examples.INBOX, "the open assignments"),
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def review_inbox(
    reviewer_id: ReviewerIdPath, api: Engine, permit: Annotated[Permit, permitted("getReviewInbox")]
) -> list[InboxItem]:
    if permit.cell.own_record and permit.who.subject != reviewer_id:
        raise forbidden(f"a reviewer reads only their own inbox ({permit.who.subject!r})", "reviewer_id")
    async with api.pool.acquire() as conn:
        if await get_reviewer(conn, reviewer_id) is None:
            raise _unknown(reviewer_id)
        return await inbox(conn, reviewer_id)
