"""What the exchange page shows every role, read through the API: status, explanation, the review's rubric.

The exchange page (GET /app/exchanges/{id}, clients/web/pages/reviewer.py) is one route whose content
depends on the viewer's role; the reviewer's and the applicant's pages both start from `exchange_facts`.
Everything comes from the REST API as the viewer (GET /exchanges/{id} and its explanation), so a reviewer
sees the full status of an exchange assigned to them and an applicant the party view (reviewers counted,
never named). The one thing read beside the API is the review rubric of the exchange's policy version:
versioned programme data (schemas/policies/), the same file the workflow validated the scores against,
which no API route serves.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from clients.web.context import door, redirect_with, refused_page, render
from clients.web.door import Door, Refused, RefusedError
from clients.web.session import SignedIn
from schemas.events import DeadlineKey
from schemas.ids import _ID_PATTERN
from schemas.policy import ReviewPolicy, UnknownPolicyVersion, load_policy

ApplicationIdPath = Annotated[str, Path(pattern=_ID_PATTERN, description="the application id")]

PARTY_NAMES = {
    "HO": "host organisation",
    "HOP": "host partnership",
    "VO": "visitor organisation",
    "VOP": "visitor partnership",
}
PARTY_ORDER = ("VO", "HO", "VOP", "HOP")
DEADLINE_NAMES = {
    DeadlineKey.REVIEW: "review decision",
    DeadlineKey.REVIEW_GRACE: "review, grace period for silent reviewers",
    DeadlineKey.AMENDMENT: "amended application",
    DeadlineKey.APPEAL: "appeal against the rejection",
    DeadlineKey.WAITLIST: "waiting list",
    DeadlineKey.SIGNATURES: "signatures of the Commitment to Quality",
    DeadlineKey.STAY_STARTS: "stay starts",
    DeadlineKey.STAY_ENDS: "stay ends",
    DeadlineKey.REPORT: "closing report",
    DeadlineKey.REPORT_VALIDATION: "validation of the report",
    DeadlineKey.PAYMENT_SLA: "payment",
}
_DEADLINE_KEYS = {key.value: key for key in DeadlineKey}
# A form's own Idempotency-Key (a hidden field): a double submit of the same form is applied once.
FORM_KEY_FIELD = "form_key"
_FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


def form_key(form: FormData) -> str:
    """The form's key when it looks like one of ours; a fresh one otherwise (the API bounds it anyway)."""
    given = form.get(FORM_KEY_FIELD)
    return given if isinstance(given, str) and _FORM_KEY.fullmatch(given) else new_form_key()


def text(form: FormData, name: str) -> str:
    """A text field as typed (files and absent fields are empty): the API trims and validates it."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def parse_instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def rubric(policy_version: str | None) -> ReviewPolicy | None:
    """The review section of the exchange's policy version (criteria, score scale, quorum), if known."""
    if not policy_version:
        return None
    try:
        return load_policy(policy_version).review
    except UnknownPolicyVersion:
        return None


def _latest(decisions: list[dict[str, Any]], event: str) -> dict[str, Any] | None:
    found = [d for d in decisions if d["event"] == event]
    return found[-1] if found else None


def _deadlines(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The deadlines soonest first, each named in words; one of the current stage that has passed is overdue."""
    now = datetime.now(UTC)
    rows = []
    for key, at in sorted((status.get("deadlines") or {}).items(), key=lambda item: item[1]):
        known = _DEADLINE_KEYS.get(key)
        due = parse_instant(at)
        current = known is not None and known.stage.value == status.get("stage")
        rows.append(
            {
                "name": DEADLINE_NAMES[known] if known else key.replace("_", " "),
                "at": at,
                "overdue": bool(current and due and due < now),
            }
        )
    return rows


async def optional(door: Door, path: str) -> Any | None:
    """A read that may not answer yet (the read model is written a moment after the workflow): None on 404."""
    try:
        return await door.get(path)
    except RefusedError as error:
        if error.refused.status == 404:
            return None
        raise


async def exchange_facts(door: Door, application_id: str) -> dict[str, Any]:
    """The template context every role's exchange page shares (RefusedError when the viewer may not read it)."""
    status: dict[str, Any] = await door.get(f"/exchanges/{application_id}")
    application: dict[str, Any] | None = await optional(door, f"/exchanges/{application_id}/application")
    explanation = await optional(door, f"/exchanges/{application_id}/explanation")
    decisions: list[dict[str, Any]] = explanation["decisions"] if explanation else []
    return {
        "application_id": application_id,
        "status": status,
        "application": application,
        "explained": explanation is not None,
        "screening": _latest(decisions, "screening_decided"),
        "pricing": _latest(decisions, "priced"),
        "reviews": [d for d in decisions if d["event"] == "review_submitted"],
        "review_decision": _latest(decisions, "review_decided"),
        "deadlines": _deadlines(status),
        "rubric": rubric(status.get("policy_version")),
        "party_names": PARTY_NAMES,
        "party_order": [p for p in PARTY_ORDER if p in (status.get("parties") or {})],
        "history": list(reversed(status.get("history") or [])),
    }


async def refused_again(
    request: Request,
    who: SignedIn,
    template: str,
    refused: Refused,
    facts: dict[str, Any] | None,
    **context: Any,
) -> Response:
    """The page again with the API's refusal on it, nothing changed; when the page itself can no longer be read
    (the viewer may not reach the exchange), the refusal alone, as an error page with the refusal's status."""
    if facts is None:
        status = refused.status if 400 <= refused.status < 500 else 502
        return await render(request, "error.html", who, status_code=status, title=refused.title, detail=refused.detail)
    return await refused_page(request, template, who, refused, **facts, **context)


Facts = Callable[[Request, SignedIn, str], Awaitable[dict[str, Any]]]


def again_with(
    facts_of: Facts, template: str, request: Request, who: SignedIn, application_id: str, form: FormData, name: str
) -> Callable[[Refused], Awaitable[Response]]:
    """The page (`facts_of` and `template`) again after the API refused form `name`: what was typed kept,
    the refusal shown; the refusal alone when the viewer can no longer read the exchange."""

    async def again(refused: Refused) -> Response:
        try:
            facts: dict[str, Any] | None = await facts_of(request, who, application_id)
        except RefusedError:
            facts = None
        if facts is not None:
            facts.update(values=kept(form), refused_form=name)
        return await refused_again(request, who, template, refused, facts)

    return again


def kept(form: FormData) -> dict[str, str]:
    """What the viewer typed, to fill the form in again after a refusal (the CSRF token and files left out)."""
    return {name: value for name, value in form.items() if isinstance(value, str) and name != "csrf_token"}


async def act(
    request: Request,
    who: SignedIn,
    path: str,
    body: dict[str, Any],
    form: FormData,
    again: Callable[[Refused], Awaitable[Response]],
    *,
    then: str,
    done: str,
) -> Response:
    """POST `body` to the API's `path` as the viewer with the form's key; on success the flash `done` and a 303
    to `then`; on a refusal `again(refused)`: the form shown again with the refusal, nothing changed."""
    try:
        await door(request, who).post(path, body, idempotency_key=form_key(form))
    except RefusedError as error:
        return await again(error.refused)
    return await redirect_with(request, who, then, done)
