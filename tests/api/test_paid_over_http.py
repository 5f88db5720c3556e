"""HTTP is a full door: one exchange seeded, started, reviewed, agreed, reported and paid with HTTP requests alone.

Dates follow docs/adr/0004-demo-dates.md on the dev server: the back office imports the application with
its original submission instant for a stay that ended three weeks ago, so the travel timers are due at
once and no clock is faked. On the way, each kind of refusal of the workflow comes back with its status
and its type (ADR 0009, "Refusals"), and finance's repeated confirmation is answered from the order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx

from clients.api import Principal
from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    OPS,
    PARTY_SERVICE,
    SERVICE,
    auth,
    body,
    fields,
    listed,
    officer_of,
    open_reviewers,
    pdf,
    reviewer_token,
    seed_over_http,
    stage_is,
    status_until,
    stay_that_ended_weeks_ago,
    token_table,
)
from tests.workflows.conftest import REVIEWERS, panel_member, review

GRANT_CENTS = 95_000  # a five-day stay in France under policy 2022.1
HO_SIGNATORY = "tok-ho-signatory-000000"
VO_SIGNATORY = "tok-vo-signatory-000000"
HOP_SERVICE = "tok-hop-service-0000000"


def refusal(answer: httpx.Response) -> str | None:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["type"].endswith(f"/refusals/{problem.get('refusal')}"), problem
    return problem.get("refusal")


async def test_an_exchange_reaches_paid_over_http_alone(make_api: MakeApi) -> None:
    """Every step through the REST API, each actor with their own token and each party's act by a principal of
    that party; repeats of finance's confirmation are answered 200 (same reference) and 409 (another one) from
    the order on record."""
    partnership = f"p-paid-{uuid.uuid4().hex[:8]}"
    host_partnership = f"{partnership}-host"

    # Start: the back office imports the record with its original submission time (ADR 0004).
    start, end = stay_that_ended_weeks_ago("FR")
    submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
    data = body(
        partnership,
        host_partnership_id=host_partnership,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        submitted_at=submitted_at.isoformat(),
        submitted_by=APPLICANT_SUBJECT,
    )
    app_id = data["application_id"]
    host_org, visitor_org = data["host"]["organisation_id"], data["visitor"]["organisation_id"]
    # The four signatories are principals of their parties: the host's and the visitor's people (applicants
    # naming their organisation), the host partnership's CRM (a service) and the visitor partnership's
    # programme officer (whose token names the partnership).
    signatories = {
        HO_SIGNATORY: Principal(subject="ho-hanna", role="applicant", organisations=frozenset({host_org})),
        VO_SIGNATORY: Principal(subject="vo-vera", role="applicant", organisations=frozenset({visitor_org})),
        HOP_SERVICE: Principal(subject="crm-host", role="service", partnerships=frozenset({host_partnership})),
    }
    api = make_api({**token_table(partnership), **signatories})
    await seed_over_http(api, partnership, budget_cents=1_000_000)

    backdated = await api.post("/exchanges", json=data, headers=auth(APPLICANT))
    assert backdated.status_code == 403, "only the back office imports"
    assert fields(backdated) == ["submitted_at"], "only the back office imports"
    by_service = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert by_service.status_code == 403, "a service is no importer"
    assert fields(by_service) == ["submitted_at"], "a service is no importer"
    started = await api.post("/exchanges", json=data, headers=auth(OFFICER))
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"/exchanges/{app_id}"

    # Review: each assigned reviewer finds it in their own inbox and approves with their own token; nobody
    # else casts a review, officers included.
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    assigned = await open_reviewers(api, OFFICER, app_id)
    not_assigned = next(member for member in names if member not in assigned)
    intruder = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(not_assigned),
        headers=auth(reviewer_token(names[not_assigned])),
    )
    assert intruder.status_code == 404, "not theirs to know of (issue 16)"
    assert "refusal" not in intruder.json()
    assert fields(intruder) == ["application_id"]
    in_their_name = await api.post(
        f"/exchanges/{app_id}/updates/submit_review", json=review(assigned[0]), headers=auth(OFFICER)
    )
    assert in_their_name.status_code == 403, "an officer never reviews in a reviewer's name"
    for member in assigned:
        token = reviewer_token(names[member])
        inbox = await api.get(f"/reviewers/{member}/inbox", headers=auth(token))
        assert app_id in [item["application_id"] for item in inbox.json()], inbox.text
        no_scores = await api.post(
            f"/exchanges/{app_id}/updates/submit_review",
            json={**review(member), "scores": {}},
            headers=auth(token),
        )
        assert no_scores.status_code == 422
        assert refusal(no_scores) == "InvalidInput"
        assert fields(no_scores) == ["scores"]
        approved = await api.post(
            f"/exchanges/{app_id}/updates/submit_review", json=review(member), headers=auth(token)
        )
        assert approved.status_code == 200, approved.text
    await stage_is(api, OFFICER, app_id, "AGREEMENT")

    # Agreement: each party signs by its own principal; `on_behalf_of` may be left out (the API fills in the
    # party's id) or given, and must then be the party's own.
    sign = f"/exchanges/{app_id}/updates/sign_commitment"
    not_theirs = await api.post(sign, json={"actor_id": "ho-hanna", "party": "VO"}, headers=auth(HO_SIGNATORY))
    assert not_theirs.status_code == 403, "the host signs only as HO"
    assert fields(not_theirs) == ["party"], "the host signs only as HO"
    officer = officer_of(partnership)
    wrong_id = {"actor_id": officer, "party": "VOP", "on_behalf_of": host_partnership}
    mismatch = await api.post(sign, json=wrong_id, headers=auth(OFFICER))
    assert mismatch.status_code == 403
    assert fields(mismatch) == ["on_behalf_of"]
    signatures = [
        (HO_SIGNATORY, {"actor_id": "ho-hanna", "party": "HO"}),
        (VO_SIGNATORY, {"actor_id": "vo-vera", "party": "VO", "on_behalf_of": visitor_org}),
        (HOP_SERVICE, {"actor_id": "hop-hugo", "party": "HOP"}),  # the CRM names its person
        (OFFICER, {"actor_id": officer, "party": "VOP"}),
    ]
    for token, signature in signatures:
        signed = await api.post(sign, json=signature, headers=auth(token))
        assert signed.status_code == 200, signed.text
    assert signed.json()["signatures"] == {"HO": "ho-hanna", "VO": "vo-vera", "HOP": "hop-hugo", "VOP": officer}
    twice = await api.post(sign, json={"actor_id": "ho-hanna", "party": "HO"}, headers=auth(HO_SIGNATORY))
    assert twice.status_code == 409
    assert refusal(twice) == "AlreadyRecorded"
    assert fields(twice) == ["party"]
    for token, side, actor in ((HO_SIGNATORY, "host", "ho-hanna"), (VO_SIGNATORY, "visitor", "vo-vera")):
        confirmed = await api.post(
            f"/exchanges/{app_id}/updates/confirm_match", json={"actor_id": actor, "side": side}, headers=auth(token)
        )
        assert confirmed.status_code == 200, confirmed.text
    await stage_is(api, OFFICER, app_id, "REPORTING")  # the stay is over: the travel timers fired at once

    # Reporting: the traveller uploads a boarding pass and reports with the item the upload answered.
    early = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": officer, "decision": "accept"},
        headers=auth(OFFICER),
    )
    assert early.status_code == 409
    assert refusal(early) == "WrongStage"
    uploaded = await api.post(
        f"/exchanges/{app_id}/evidence",
        files={"file": ("boarding-pass.pdf", pdf(app_id), "application/pdf")},
        data={"kind": "boarding_pass"},
        headers=auth(APPLICANT),
    )
    assert uploaded.status_code == 201, uploaded.text
    item = uploaded.json()
    report = {"actor_id": APPLICANT_SUBJECT, "summary": "Goals met; the agenda was followed.", "evidence": [item]}
    forged = {**item, "sha256": "0" * 64}
    unknown_file = await api.post(
        f"/exchanges/{app_id}/updates/submit_report", json={**report, "evidence": [forged]}, headers=auth(APPLICANT)
    )
    assert unknown_file.status_code == 422
    assert refusal(unknown_file) == "EvidenceRefused"
    assert fields(unknown_file) == ["evidence"]
    submitted = await api.post(f"/exchanges/{app_id}/updates/submit_report", json=report, headers=auth(APPLICANT))
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["report_submitted"] is True, submitted.text
    # The visitor partnership's CRM may validate for its people, but the workflow still keeps four eyes.
    own_report = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": APPLICANT_SUBJECT, "decision": "accept"},
        headers=auth(PARTY_SERVICE),
    )
    assert own_report.status_code == 403, "four-eyes"
    assert refusal(own_report) == "NotAllowed", "four-eyes"
    not_vop = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": "hop-hugo", "decision": "accept"},
        headers=auth(HOP_SERVICE),
    )
    assert not_vop.status_code == 403, "only the VOP validates"
    assert fields(not_vop) == ["on_behalf_of"], "only the VOP validates"
    accepted = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": officer, "decision": "accept"},
        headers=auth(OFFICER),
    )
    assert accepted.status_code == 200, accepted.text

    # Payment: finance reads the order from the status and confirms it.
    ordered = await status_until(
        api, OPS, app_id, lambda s: s["stage"] == "PAYMENT" and s["payment_order_id"] is not None
    )
    assert (ordered["payment_order_id"], ordered["paid_cents"]) == (f"po-{app_id}", GRANT_CENTS)
    confirmation = {
        "payment_order_id": ordered["payment_order_id"],
        "amount_cents": ordered["paid_cents"],
        "payment_reference": "SEPA-E2E-0001",
        "confirmed_by": "finance-fia",
    }
    path = f"/exchanges/{app_id}/signals/confirm_payment"
    short = await api.post(path, json={**confirmation, "amount_cents": GRANT_CENTS - 1}, headers=auth(SERVICE))
    assert short.status_code == 422
    assert fields(short) == ["amount_cents"]
    sent = await api.post(path, json=confirmation, headers=auth(SERVICE))
    assert sent.status_code == 202
    assert sent.json() == {"application_id": app_id, "signal": "confirm_payment"}
    paid = await stage_is(api, OPS, app_id, "PAID")
    assert (paid["paid_cents"], paid["payment_reference"]) == (GRANT_CENTS, "SEPA-E2E-0001")
    await listed(api, OPS, 1, stage="PAID", partnership=partnership)  # the order row carries the confirmation

    # The repeat is answered from the order row, though the workflow has ended.
    repeat = await api.post(path, json=confirmation, headers=auth(SERVICE))
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["already_confirmed"] is True
    assert repeat.json()["payment_reference"] == "SEPA-E2E-0001"
    assert repeat.json()["confirmed_by"] == "finance-fia"
    assert repeat.json()["confirmed_at"]
    other = await api.post(path, json={**confirmation, "payment_reference": "SEPA-E2E-9999"}, headers=auth(SERVICE))
    assert other.status_code == 409
    assert fields(other) == ["payment_reference"]

    # The records, over HTTP too: ledger history, the explanation and the partnership's budget.
    ledger = await api.get(f"/exchanges/{app_id}/ledger", headers=auth(OPS))
    assert sorted(t["kind"] for t in ledger.json()) == ["hold", "pay_out", "post"]
    explanation = await api.get(f"/exchanges/{app_id}/explanation", headers=auth(APPLICANT))
    assert explanation.status_code == 200
    events = [d["event"] for d in explanation.json()["decisions"]]
    assert {"screening_decided", "priced", "payment_ordered"} <= set(events), events
    # Need to know: the applicant reads the reviews' scores under pseudonyms, never the reviewers' names.
    reviews = [d for d in explanation.json()["decisions"] if d["event"] == "review_submitted"]
    assert sorted(d["actor_id"] for d in reviews) == ["reviewer 1", "reviewer 2"]
    assert all(d["details"]["scores"] for d in reviews)
    for member in names:
        assert member not in explanation.text
        assert member not in (await api.get(f"/exchanges/{app_id}", headers=auth(APPLICANT))).text
    budgets = {b["partnership_id"]: b for b in (await api.get("/budgets", headers=auth(OPS))).json()}
    assert (budgets[partnership]["held_cents"], budgets[partnership]["paid_cents"]) == (0, GRANT_CENTS)
