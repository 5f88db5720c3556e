"""Pages for programme officers and ops (issue 14): the back office's dashboard, budgets, late and stuck
exchanges, an exchange's timeline with the officers' actions, payment orders and the bulk import.

Every page reads, and every form acts, through the REST API as the signed-in principal (clients/web/door.py),
so the role table decides: ops read the same pages (the forms are not offered to them, and the API would
refuse them), a reviewer or an applicant is refused by the API's first read and gets its 403 as the page.

- GET /officer: exchanges by stage and partnership (GET /exchange-counts), each count linked to its list.
- GET /officer/exchanges: the list of one stage and/or partnership (GET /exchanges), or the late ones.
- GET /officer/exchanges/{id}: the status and the audit trail (GET /exchanges/{id}/timeline: actor, time,
  reason, policy version), and the forms for override, reassign, extend_review_deadline, reopen and cancel,
  each the update of the same name (POST /exchanges/{id}/updates/<name>) with the officer as `actor_id`.
- GET /officer/budgets: allocated, held, paid and available per partnership (GET /budgets) as a table and an
  inline SVG chart, each partnership's waitlist in order (GET /partnerships/{id}/waitlist), and the top-up
  form (POST /partnerships/{id}/top-ups; euros typed, parsed with clients/money.py).
- GET /officer/late: past a deadline (GET /exchanges?late=true) and stuck (GET /stuck-exchanges).
- GET /officer/payments: payment orders with their state (GET /payment-orders).
- GET/POST /officer/import: a CSV or JSON file of applications (POST /imports) and its per-row report.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from clients.money import InvalidAmount, parse_eur
from clients.web.chart import budget_chart
from clients.web.context import CheckedForm, Viewer, door, redirect_with, refused_page, render
from clients.web.door import Refused, RefusedError
from clients.web.session import SignedIn
from ledger.errors import MAX_AMOUNT_CENTS
from schemas.ids import _ID_PATTERN
from schemas.stages import TERMINAL_STAGES, Stage

router = APIRouter()

ApplicationIdPath = Annotated[str, Path(pattern=_ID_PATTERN)]
PartnershipQuery = Annotated[str | None, Query(pattern=_ID_PATTERN)]
STAGES = [stage.value for stage in Stage]
LIST_LIMIT = 100
MAX_IMPORT_BYTES = 512 * 1024  # the API's own limit (clients/api/routers/oversight.py) refuses past it too

# The officers' actions on one exchange: the update each form sends, its label, and what the flash says.
ACTIONS: Mapping[str, tuple[str, str]] = {
    "override": ("Override the review", "Override recorded"),
    "reassign": ("Reassign a reviewer", "Reviewer reassigned"),
    "extend_review_deadline": ("Extend the review deadline", "Review deadline extended"),
    "reopen": ("Reopen a rejected application", "Application reopened"),
    "cancel": ("Cancel the exchange", "Exchange cancelled"),
}


def form_key() -> str:
    """A fresh key per rendered form, sent as the Idempotency-Key: a double submit is applied once."""
    return secrets.token_urlsafe(16)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _is_officer(who: SignedIn) -> bool:
    return who.principal.role == "officer"


# Dashboard and lists -----------------------------------------------------------------------------------------


@router.get("/officer", include_in_schema=False)
async def dashboard(request: Request, who: Viewer) -> Response:
    """Exchanges by stage (columns, in lifecycle order) and partnership (rows), each count linked to its list."""
    counts: list[dict[str, Any]] = await door(request, who).get("/exchange-counts")
    partnerships = sorted({c["partnership_id"] for c in counts})
    stages = [s for s in STAGES if any(c["stage"] == s for c in counts)]
    cells = {(c["partnership_id"], c["stage"]): c["count"] for c in counts}
    by_stage = {s: sum(c["count"] for c in counts if c["stage"] == s) for s in stages}
    by_partnership = {p: sum(c["count"] for c in counts if c["partnership_id"] == p) for p in partnerships}
    return await render(
        request,
        "officer_dashboard.html",
        who,
        partnerships=partnerships,
        stages=stages,
        cells=cells,
        by_stage=by_stage,
        by_partnership=by_partnership,
        total=sum(by_stage.values()),
        open_stages=[s for s in stages if Stage(s) not in TERMINAL_STAGES],
    )


@router.get("/officer/exchanges", include_in_schema=False)
async def exchange_list(
    request: Request,
    who: Viewer,
    stage: Stage | None = None,
    partnership: PartnershipQuery = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """One page of exchanges of a stage and/or partnership, soonest deadline first."""
    params = {"stage": stage.value if stage else None, "partnership": partnership, "limit": LIST_LIMIT}
    page: dict[str, Any] = await door(request, who).get("/exchanges", {**params, "offset": offset})
    return await render(
        request,
        "officer_exchanges.html",
        who,
        page=page,
        stage=stage.value if stage else None,
        partnership=partnership,
    )


@router.get("/officer/late", include_in_schema=False)
async def late_page(request: Request, who: Viewer, quiet_days: Annotated[int, Query(ge=1, le=365)] = 14) -> Response:
    """Open exchanges past a deadline, and those stuck: nothing recorded for `quiet_days` days, nothing ahead."""
    api = door(request, who)
    late: dict[str, Any] = await api.get("/exchanges", {"late": "true", "limit": LIST_LIMIT})
    stuck: list[dict[str, Any]] = await api.get("/stuck-exchanges", {"quiet_days": quiet_days})
    return await render(request, "officer_late.html", who, late=late["items"], stuck=stuck, quiet_days=quiet_days)


@router.get("/officer/payments", include_in_schema=False)
async def payments_page(request: Request, who: Viewer, partnership: PartnershipQuery = None) -> Response:
    """Payment orders with their state (pending, sent, confirmed, overdue), oldest first."""
    orders: list[dict[str, Any]] = await door(request, who).get("/payment-orders", {"partnership": partnership})
    states = ("pending", "sent", "confirmed", "overdue")
    totals = {s: sum(o["amount_cents"] for o in orders if o["state"] == s) for s in states}
    counts = {s: sum(1 for o in orders if o["state"] == s) for s in states}
    return await render(
        request, "officer_payments.html", who, orders=orders, totals=totals, counts=counts, partnership=partnership
    )


# Budgets and top-ups ----------------------------------------------------------------------------------------


async def _budget_facts(request: Request, who: SignedIn) -> dict[str, Any]:
    api = door(request, who)
    budgets: list[dict[str, Any]] = await api.get("/budgets")
    names = {p["partnership_id"]: p["name"] for p in await api.get("/partnerships")}
    waitlists = {b["partnership_id"]: await api.get(f"/partnerships/{b['partnership_id']}/waitlist") for b in budgets}
    rows = [{**b, "name": names.get(b["partnership_id"]) or b["partnership_id"]} for b in budgets]
    return {
        "budgets": rows,
        "chart": budget_chart(rows),
        "waitlists": waitlists,
        "partnership_choices": sorted(names.items(), key=lambda item: (item[1] or item[0]).lower()),
        "can_top_up": _is_officer(who),
        "top_up_key": form_key(),
        "values": {},
    }


@router.get("/officer/budgets", include_in_schema=False)
async def budgets_page(request: Request, who: Viewer) -> Response:
    return await render(request, "officer_budgets.html", who, **await _budget_facts(request, who))


@router.post("/officer/budgets/top-up", include_in_schema=False)
async def top_up(request: Request, who: Viewer, form: CheckedForm) -> Response:
    """Top up a partnership's budget: the amount typed in euros, booked once per reference."""
    partnership, reference, amount = _text(form, "partnership_id"), _text(form, "reference"), _text(form, "amount_eur")
    values = {"partnership_id": partnership, "reference": reference, "amount_eur": amount}
    try:
        amount_cents = parse_eur(amount, field="amount", maximum_cents=MAX_AMOUNT_CENTS)
    except InvalidAmount as error:
        refused = Refused(422, "Invalid amount", str(error), [("amount_eur", str(error))])
        return await _budgets_again(request, who, refused, values)
    try:
        booked: dict[str, Any] = await door(request, who).post(
            f"/partnerships/{partnership}/top-ups",
            {"amount_cents": amount_cents, "reference": reference},
            idempotency_key=_text(form, "form_key") or None,
        )
    except RefusedError as error:
        return await _budgets_again(request, who, error.refused, values)
    done = "already booked under this reference: nothing new" if booked["replayed"] else "booked"
    return await redirect_with(
        request, who, "/officer/budgets", f"Top-up of {partnership} ({booked['reference']}): {done}."
    )


async def _budgets_again(request: Request, who: SignedIn, refused: Refused, values: dict[str, str]) -> Response:
    facts = await _budget_facts(request, who)
    facts["values"] = values
    return await refused_page(request, "officer_budgets.html", who, refused, **facts)


# One exchange: status, timeline and actions -----------------------------------------------------------------


async def _exchange_facts(request: Request, who: SignedIn, application_id: str) -> dict[str, Any]:
    api = door(request, who)
    status: dict[str, Any] = await api.get(f"/exchanges/{application_id}")
    try:
        events: list[dict[str, Any]] = await api.get(f"/exchanges/{application_id}/timeline")
    except RefusedError as error:
        if error.refused.status != 404:
            raise
        events = []  # started a moment ago: the read model has nothing yet
    review = status.get("review") or {}
    return {
        "application_id": application_id,
        "status": status,
        "events": list(reversed(events)),
        "assignments": review.get("assignments", []),
        "open_reviewers": [a["reviewer_id"] for a in review.get("assignments", []) if a["status"] == "open"],
        "terminal": Stage(status["stage"]) in TERMINAL_STAGES,
        "can_act": _is_officer(who),
        "actions": ACTIONS,
        "keys": {name: form_key() for name in ACTIONS},
        "values": {},
        "refused_form": None,
    }


@router.get("/officer/exchanges/{application_id}", include_in_schema=False)
async def exchange_page(request: Request, application_id: ApplicationIdPath, who: Viewer) -> Response:
    facts = await _exchange_facts(request, who, application_id)
    return await render(request, "officer_exchange.html", who, **facts)


def _update_body(name: str, form: FormData, actor_id: str) -> dict[str, Any]:
    """The update's body from its form, as typed: the API parses it strictly and names what it refuses."""
    justification = _text(form, "justification")
    if name == "override":
        return {"actor_id": actor_id, "decision": _text(form, "decision"), "justification": justification}
    if name == "reassign":
        return {"actor_id": actor_id, "reviewer_id": _text(form, "reviewer_id"), "justification": justification}
    if name == "extend_review_deadline":
        days = _text(form, "working_days")
        return {
            "actor_id": actor_id,
            "working_days": int(days) if days.isdigit() else days,
            "justification": justification,
        }
    if name == "reopen":
        return {"actor_id": actor_id, "justification": justification}
    return {"actor_id": actor_id, "reason": _text(form, "reason")}


@router.post("/officer/exchanges/{application_id}/{action}", include_in_schema=False)
async def act(
    request: Request, application_id: ApplicationIdPath, action: str, who: Viewer, form: CheckedForm
) -> Response:
    """One officer action: the update of the same name, as the signed-in officer."""
    if action not in ACTIONS:
        return await render(
            request, "error.html", who, status_code=404, title="No such action", detail=f"{action!r} is not an action"
        )
    body = _update_body(action, form, who.principal.subject)
    path = f"/exchanges/{application_id}/updates/{action}"
    try:
        status = await door(request, who).post(path, body, idempotency_key=_text(form, "form_key") or None)
    except RefusedError as error:
        facts = await _exchange_facts(request, who, application_id)
        facts.update(values={k: v for k, v in form.items() if isinstance(v, str)}, refused_form=action)
        return await refused_page(request, "officer_exchange.html", who, error.refused, **facts)
    message = f"{ACTIONS[action][1]}: {application_id} is now in {status['stage']}."
    return await redirect_with(request, who, f"/officer/exchanges/{application_id}", message)


# The import ----------------------------------------------------------------------------------------------------


@router.get("/officer/import", include_in_schema=False)
async def import_page(request: Request, who: Viewer) -> Response:
    return await render(request, "officer_import.html", who, can_import=_is_officer(who), key=form_key(), report=None)


@router.post("/officer/import", include_in_schema=False)
async def import_file(request: Request, who: Viewer, form: CheckedForm) -> Response:
    """The chosen file to POST /imports; the per-row report on the page (refused rows by line and field)."""
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        refused = Refused(422, "No file", "Choose a CSV or JSON file of applications.", [("file", "Field required")])
        return await refused_page(request, "officer_import.html", who, refused, can_import=True, key=form_key())
    data = await file.read(MAX_IMPORT_BYTES + 1)
    files = {"file": (file.filename, data, file.content_type or "text/csv")}
    try:
        report: dict[str, Any] = await door(request, who).upload(
            "/imports", files, idempotency_key=_text(form, "form_key") or form_key()
        )
    except RefusedError as error:
        return await refused_page(request, "officer_import.html", who, error.refused, can_import=True, key=form_key())
    return await render(
        request, "officer_import.html", who, can_import=True, key=form_key(), report=report, filename=file.filename
    )
