"""Pages for the reviewer (issue 14): the inbox, and the exchange page with the review form.

- GET /inbox: the reviewer's open assignments (the API's GET /reviewers/{subject}/inbox), oldest deadline
  first, an overdue one marked in words.
- GET /exchanges/{id}: one exchange, its content by the viewer's role. A reviewer sees the application, the
  screening result and the pricing explained (rule, policy version, reasons, deadline) and the reviews so
  far; with an open assignment also the review form (the policy's criteria and score scale, recommendation,
  comment), a form to declare a conflict and one to request changes. An applicant gets applicant.py's page
  on the same route; officers and ops are sent to the back office's page (officer.py).
- POST /exchanges/{id}/review, /conflict, /changes: the API's `submit_review`, `declare_conflict` and
  `request_changes` updates with the reviewer as `actor_id`. A refusal (wrong stage, four-eyes, not assigned)
  is shown on the page again with the API's status, and nothing changed.

A reviewer who may not read an exchange (not assigned, or recused) gets the API's refusal as an error page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from clients.web.context import CheckedForm, Viewer, door, page_url, render
from clients.web.door import Refused
from clients.web.pages import applicant
from clients.web.pages.exchange import (
    ApplicationIdPath,
    act,
    again_with,
    exchange_facts,
    new_form_key,
    parse_instant,
    text,
)
from clients.web.session import SignedIn

router = APIRouter()

TEMPLATE = "reviewer_exchange.html"
SCORE_PREFIX = "score."
BACK_OFFICE_ROLES = frozenset({"officer", "ops"})


@router.get("/inbox", include_in_schema=False)
async def inbox_page(request: Request, who: Viewer) -> Response:
    """The reviewer's open assignments, oldest deadline first; refused by the API for anyone else's inbox."""
    items: list[dict[str, Any]] = await door(request, who).get(f"/reviewers/{who.principal.subject}/inbox")
    now = datetime.now(UTC)
    rows = sorted(items, key=lambda item: item["due_at"])
    for row in rows:
        due = parse_instant(row["due_at"])
        row["overdue"] = due is not None and due < now
    return await render(request, "reviewer_inbox.html", who, items=rows)


@router.get("/exchanges/{application_id}", include_in_schema=False)
async def exchange_page(request: Request, application_id: ApplicationIdPath, who: Viewer) -> Response:
    """The exchange page by role: the applicant's, the back office's (officer.py), or the reviewer's (its forms
    only when the viewer's assignment is open)."""
    if who.principal.role == "applicant":
        return await applicant.exchange_page(request, who, application_id)
    if who.principal.role in BACK_OFFICE_ROLES:
        # The back office's own page of the exchange (officer.py): its timeline and the officers' actions.
        return RedirectResponse(page_url(f"/officer/exchanges/{application_id}"), status_code=303)
    return await render(request, TEMPLATE, who, **await reviewer_facts(request, who, application_id))


async def reviewer_facts(request: Request, who: SignedIn, application_id: str) -> dict[str, Any]:
    """The shared facts, with the viewer's assignment and which of the reviewer's forms apply."""
    facts = await exchange_facts(door(request, who), application_id)
    status = facts["status"]
    review = status.get("review") or {}
    mine = next((a for a in review.get("assignments", []) if a["reviewer_id"] == who.principal.subject), None)
    open_here = status["stage"] == "REVIEW" and mine is not None and mine["status"] == "open"
    return {
        **facts,
        "assignment": mine,
        "review_state": review,
        "can_review": open_here,
        "form_keys": {name: new_form_key() for name in ("review", "conflict", "changes")},
        "values": {},
        "refused_form": None,
    }


def _again(
    request: Request, who: SignedIn, application_id: str, form: FormData, name: str
) -> Callable[[Refused], Awaitable[Response]]:
    return again_with(reviewer_facts, TEMPLATE, request, who, application_id, form, name)


def _score(value: str) -> int | str:
    """A score as a number; anything else goes to the API as typed, which refuses it naming the criterion."""
    stripped = value.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else stripped


def scores_of(form: FormData) -> dict[str, int | str]:
    return {
        name.removeprefix(SCORE_PREFIX): _score(value)
        for name, value in form.multi_items()
        if name.startswith(SCORE_PREFIX) and isinstance(value, str) and value.strip()
    }


@router.post("/exchanges/{application_id}/review", include_in_schema=False)
async def post_review(request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm) -> Response:
    """`submit_review` as the signed-in reviewer: recommendation, one score per criterion, comment."""
    body: dict[str, Any] = {
        "actor_id": who.principal.subject,
        "recommendation": text(form, "recommendation"),
        "scores": scores_of(form),
        "comment": text(form, "comment"),
    }
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/submit_review",
        body,
        form,
        _again(request, who, application_id, form, "review"),
        then=f"/exchanges/{application_id}",
        done="Your review was recorded.",
    )


@router.post("/exchanges/{application_id}/conflict", include_in_schema=False)
async def post_conflict(
    request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm
) -> Response:
    """`declare_conflict`: the reviewer recuses themself; a replacement is assigned and the exchange leaves
    their inbox (so the answer leads back to the inbox: the exchange is no longer theirs to read)."""
    body = {"actor_id": who.principal.subject, "reason": text(form, "reason")}
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/declare_conflict",
        body,
        form,
        _again(request, who, application_id, form, "conflict"),
        then="/inbox",
        done=f"Your conflict of interest on {application_id} was recorded; another reviewer takes your place.",
    )


@router.post("/exchanges/{application_id}/changes", include_in_schema=False)
async def post_changes(request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm) -> Response:
    """`request_changes`: the application goes back to the applicant; earlier reviews no longer count."""
    body = {"actor_id": who.principal.subject, "changes": text(form, "changes")}
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/request_changes",
        body,
        form,
        _again(request, who, application_id, form, "changes"),
        then=f"/exchanges/{application_id}",
        done="Your request for changes was sent to the applicant.",
    )
