"""Pages for the applicant (issue 14): their exchanges, what each still needs, and the applicant's own acts.

- GET /mine: the exchanges the API lists for the applicant (GET /exchanges: exactly those they may read),
  each with its stage, next deadline and what is missing (signatures per party, match confirmations, the
  report, evidence), linking to the exchange page.
- The exchange page (GET /exchanges/{id}, routed in reviewer.py, drawn here for applicants): the status in the
  party view, what is missing, the screening and pricing explained, and the forms that apply: evidence upload,
  the closing report, the Commitment to Quality signed and the match confirmed for the parties the applicant's
  credentials name (HO/VO by organisation, HOP/VOP by partnership: clients/api/access.py `holds`), withdraw.
- POST /exchanges/{id}/evidence (multipart, to the API's upload route), /report, /sign, /match, /withdraw:
  the same requests any client sends, as the applicant (`actor_id` is their subject). A refusal is shown on
  the page again with the API's status, and nothing changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from clients.api.access import holds
from clients.api.auth import Principal
from clients.web.context import CheckedForm, Viewer, door, redirect_with, render
from clients.web.door import Door, Refused, RefusedError
from clients.web.pages.exchange import (
    PARTY_NAMES,
    ApplicationIdPath,
    act,
    again_with,
    exchange_facts,
    form_key,
    new_form_key,
    optional,
    text,
)
from clients.web.session import SignedIn
from rules.evidence import EVIDENCE_KINDS, MAX_EVIDENCE_SIZE_BYTES
from schemas.exchange import Party
from schemas.stages import TERMINAL_STAGES, WITHDRAWABLE_STAGES

router = APIRouter()

TEMPLATE = "applicant_exchange.html"
LIST_LIMIT = 50  # the exchanges one page lists (an applicant has a handful; the API allows up to 100)
EVIDENCE_KIND_NAMES = {
    "boarding_pass": "Boarding pass",
    "travel_invoice": "Travel invoice",
    "accommodation_invoice": "Accommodation invoice",
    "other": "Other",
}
SIDES = {"host": Party.HOST_ORGANISATION, "visitor": Party.VISITOR_ORGANISATION}
FORMS = ("evidence", "report", "sign", "match", "withdraw")
# What an exchange waits for when nobody's act is missing (the engine's own steps, or time).
WAITING_FOR = {
    "SUBMITTED": "screening of the application",
    "SCREENING": "screening of the application",
    "REVIEW": "the reviewers' decision",
    "FUNDING": "funds from the partnership's budget",
    "WAITLISTED": "funds: the exchange is on the partnership's waiting list",
    "TRAVEL": "the stay to take place",
}


def missing(status: dict[str, Any], evidence_count: int) -> list[str]:
    """What the exchange waits for, in words, from its status (and how many evidence files were uploaded)."""
    stage = status["stage"]
    review = status.get("review") or {}
    needs: list[str] = []
    if stage == "REVIEW" and review.get("changes_requested"):
        needs.append(f"An amended application: the review asked for changes ({review['changes_requested']})")
    if stage == "AGREEMENT":
        signatures = status.get("signatures") or {}
        for party in ("VO", "HO", "VOP", "HOP"):
            if party not in signatures:
                needs.append(f"Signature of the Commitment to Quality by the {PARTY_NAMES[party]} ({party})")
        confirmed = status.get("match_confirmed_by") or {}
        for side in SIDES:
            if side not in confirmed:
                needs.append(f"Match confirmation by the {side} organisation")
    if stage == "REPORTING":
        if evidence_count == 0:
            needs.append("Evidence: boarding passes, travel and accommodation invoices")
        if status.get("report_submitted"):
            needs.append("Validation of the report by the visitor's partnership")
        else:
            needs.append("The closing report")
    if stage == "PAYMENT":
        needs.append("Payment by the programme's finance")
    return needs


def signable(principal: Principal, status: dict[str, Any]) -> list[dict[str, str]]:
    """The parties the applicant acts for that have not signed yet (only in AGREEMENT)."""
    if status["stage"] != "AGREEMENT":
        return []
    signed = status.get("signatures") or {}
    return [
        {"party": code, "id": party_id, "name": PARTY_NAMES[code]}
        for code, party_id in sorted((status.get("parties") or {}).items())
        if code not in signed and holds(principal, Party(code), party_id)
    ]


def confirmable(principal: Principal, status: dict[str, Any]) -> list[dict[str, str]]:
    """The sides (host, visitor) whose organisation the applicant acts for and that have not confirmed."""
    if status["stage"] != "AGREEMENT":
        return []
    parties = status.get("parties") or {}
    confirmed = status.get("match_confirmed_by") or {}
    return [
        {"side": side, "id": parties[party.value]}
        for side, party in SIDES.items()
        if side not in confirmed and party.value in parties and holds(principal, party, parties[party.value])
    ]


async def _evidence(api: Door, application_id: str) -> list[dict[str, Any]]:
    found = await optional(api, f"/exchanges/{application_id}/evidence")
    return list(found or [])


@router.get("/mine", include_in_schema=False)
async def mine_page(request: Request, who: Viewer) -> Response:
    """The applicant's exchanges with stage, next deadline and what is missing, soonest deadline first."""
    api = door(request, who)
    page: dict[str, Any] = await api.get("/exchanges", {"limit": LIST_LIMIT})
    rows = []
    for item in page["items"]:
        needs: list[str] = []
        if item["stage"] not in TERMINAL_STAGES:
            status = await optional(api, f"/exchanges/{item['application_id']}")
            if status is not None:
                count = len(await _evidence(api, item["application_id"])) if status["stage"] == "REPORTING" else 0
                needs = missing(status, count)
        rows.append({**item, "missing": needs, "waiting_for": WAITING_FOR.get(item["stage"])})
    return await render(request, "applicant_mine.html", who, items=rows, more=page["next_offset"] is not None)


async def applicant_facts(request: Request, who: SignedIn, application_id: str) -> dict[str, Any]:
    """The shared facts, the uploaded evidence, what is missing and which of the applicant's forms apply."""
    api = door(request, who)
    facts = await exchange_facts(api, application_id)
    status = facts["status"]
    evidence = await _evidence(api, application_id)
    reporting = status["stage"] == "REPORTING" and not status.get("report_submitted")
    return {
        **facts,
        "evidence": evidence,
        "missing": missing(status, len(evidence)),
        "waiting_for": WAITING_FOR.get(status["stage"]),
        "signable": signable(who.principal, status),
        "confirmable": confirmable(who.principal, status),
        "can_report": reporting,
        "can_withdraw": status["stage"] in WITHDRAWABLE_STAGES,
        "evidence_kinds": [(kind, EVIDENCE_KIND_NAMES.get(kind, kind)) for kind in EVIDENCE_KINDS],
        "form_keys": {name: new_form_key() for name in FORMS},
        "values": {},
        "refused_form": None,
    }


async def exchange_page(request: Request, who: SignedIn, application_id: str) -> Response:
    return await render(request, TEMPLATE, who, **await applicant_facts(request, who, application_id))


def _again(
    request: Request, who: SignedIn, application_id: str, form: FormData, name: str
) -> Callable[[Refused], Awaitable[Response]]:
    return again_with(applicant_facts, TEMPLATE, request, who, application_id, form, name)


@router.post("/exchanges/{application_id}/evidence", include_in_schema=False)
async def post_evidence(
    request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm
) -> Response:
    """The file, its kind and label to the API's upload route (the API checks type, size and who uploads)."""
    upload = form.get("file")
    files: dict[str, tuple[str, bytes, str]] = {}
    if isinstance(upload, UploadFile) and upload.filename:
        # One byte past the limit is enough for the API to refuse it (413); the rest is never read.
        data = await upload.read(MAX_EVIDENCE_SIZE_BYTES + 1)
        files["file"] = (upload.filename, data, upload.content_type or "application/octet-stream")
    fields = {"kind": text(form, "kind")}
    if text(form, "name").strip():
        fields["name"] = text(form, "name").strip()
    try:
        item = await door(request, who).upload(
            f"/exchanges/{application_id}/evidence", files, idempotency_key=form_key(form), data=fields
        )
    except RefusedError as error:
        return await _again(request, who, application_id, form, "evidence")(error.refused)
    kind = EVIDENCE_KIND_NAMES.get(item["kind"], item["kind"]).lower()
    return await redirect_with(
        request, who, f"/exchanges/{application_id}", f"{item['name']} was uploaded as a {kind}."
    )


@router.post("/exchanges/{application_id}/report", include_in_schema=False)
async def post_report(request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm) -> Response:
    """`submit_report`: the summary, the actual last day when the stay was shortened, and the evidence items
    ticked, taken from the API's record of the uploads (never from the form, so none can be made up)."""
    chosen = {value for value in form.getlist("evidence") if isinstance(value, str)}
    uploads = await _evidence(door(request, who), application_id)
    body: dict[str, Any] = {
        "actor_id": who.principal.subject,
        "summary": text(form, "summary"),
        "evidence": [
            {key: record[key] for key in ("name", "kind", "sha256", "size_bytes")}
            for record in uploads
            if record["sha256"] in chosen
        ],
    }
    if text(form, "actual_end_date").strip():
        body["actual_end_date"] = text(form, "actual_end_date").strip()
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/submit_report",
        body,
        form,
        _again(request, who, application_id, form, "report"),
        then=f"/exchanges/{application_id}",
        done="Your report was submitted; the visitor's partnership validates it next.",
    )


@router.post("/exchanges/{application_id}/sign", include_in_schema=False)
async def post_sign(request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm) -> Response:
    """`sign_commitment` for one party (the API fills in `on_behalf_of` and refuses a party not the viewer's)."""
    party = text(form, "party")
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/sign_commitment",
        {"actor_id": who.principal.subject, "party": party},
        form,
        _again(request, who, application_id, form, "sign"),
        then=f"/exchanges/{application_id}",
        done=f"You signed the Commitment to Quality for the {PARTY_NAMES.get(party, party)}.",
    )


@router.post("/exchanges/{application_id}/match", include_in_schema=False)
async def post_match(request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm) -> Response:
    """`confirm_match` for one side (host or visitor) whose organisation the viewer acts for."""
    side = text(form, "side")
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/confirm_match",
        {"actor_id": who.principal.subject, "side": side},
        form,
        _again(request, who, application_id, form, "match"),
        then=f"/exchanges/{application_id}",
        done=f"You confirmed the match for the {side} organisation.",
    )


@router.post("/exchanges/{application_id}/withdraw", include_in_schema=False)
async def post_withdraw(
    request: Request, application_id: ApplicationIdPath, who: Viewer, form: CheckedForm
) -> Response:
    """`withdraw`, once the box confirming it is ticked (a withdrawal is final); the reason is the API's to check."""
    again = _again(request, who, application_id, form, "withdraw")
    if text(form, "confirm") != "yes":
        refused = Refused(
            422,
            "Confirmation needed",
            "Withdrawing ends this application for good: tick the box to confirm it.",
            [("confirm", "tick the box to confirm the withdrawal")],
        )
        return await again(refused)
    return await act(
        request,
        who,
        f"/exchanges/{application_id}/updates/withdraw",
        {"actor_id": who.principal.subject, "reason": text(form, "reason")},
        form,
        again,
        then="/mine",
        done=f"{application_id} was withdrawn.",
    )
