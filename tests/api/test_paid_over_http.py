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

from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    OPS,
    SERVICE,
    auth,
    body,
    fields,
    listed,
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
PARTIES = ("HO", "HOP", "VO", "VOP")


def refusal(answer: httpx.Response) -> str | None:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    problem: dict[str, Any] = answer.json()
    assert problem["type"].endswith(f"/refusals/{problem.get('refusal')}"), problem
    return problem.get("refusal")


async def test_an_exchange_reaches_paid_over_http_alone(make_api: MakeApi) -> None:
    """Every step through the REST API, each actor with their own token; repeats of finance's confirmation are
    answered 200 (same reference) and 409 (another one) from the order on record."""
    partnership = f"p-paid-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    await seed_over_http(api, partnership, budget_cents=1_000_000)

    # Start: the back office imports the record with its original submission time (ADR 0004).
    start, end = stay_that_ended_weeks_ago("FR")
    submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
    data = body(
        partnership,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        submitted_at=submitted_at.isoformat(),
        submitted_by=APPLICANT_SUBJECT,
    )
    app_id = data["application_id"]
    backdated = await api.post("/exchanges", json=data, headers=auth(APPLICANT))
    assert backdated.status_code == 403 and fields(backdated) == ["submitted_at"], "only the back office imports"
    started = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"/exchanges/{app_id}"

    # Review: each assigned reviewer finds it in their own inbox and approves with their own token.
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    assigned = await open_reviewers(api, OFFICER, app_id)
    not_assigned = next(member for member in names if member not in assigned)
    intruder = await api.post(
        f"/exchanges/{app_id}/updates/submit_review", json=review(not_assigned), headers=auth(OFFICER)
    )
    assert intruder.status_code == 403 and refusal(intruder) == "NotAllowed" and fields(intruder) == ["actor_id"]
    for member in assigned:
        token = reviewer_token(names[member])
        inbox = await api.get(f"/reviewers/{member}/inbox", headers=auth(token))
        assert app_id in [item["application_id"] for item in inbox.json()], inbox.text
        no_scores = await api.post(
            f"/exchanges/{app_id}/updates/submit_review",
            json={**review(member), "scores": {}},
            headers=auth(token),
        )
        assert no_scores.status_code == 422 and refusal(no_scores) == "InvalidInput"
        assert fields(no_scores) == ["scores"]
        approved = await api.post(
            f"/exchanges/{app_id}/updates/submit_review", json=review(member), headers=auth(token)
        )
        assert approved.status_code == 200, approved.text
    await stage_is(api, OFFICER, app_id, "AGREEMENT")

    # Agreement: four signatures and both sides' confirmation of the match.
    for party in PARTIES:
        signed = await api.post(
            f"/exchanges/{app_id}/updates/sign_commitment",
            json={"actor_id": f"{party.lower()}-signatory", "party": party},
            headers=auth(OFFICER),
        )
        assert signed.status_code == 200, signed.text
    twice = await api.post(
        f"/exchanges/{app_id}/updates/sign_commitment",
        json={"actor_id": "ho-signatory", "party": "HO"},
        headers=auth(OFFICER),
    )
    assert twice.status_code == 409 and refusal(twice) == "AlreadyRecorded" and fields(twice) == ["party"]
    for side in ("host", "visitor"):
        confirmed = await api.post(
            f"/exchanges/{app_id}/updates/confirm_match",
            json={"actor_id": f"{side}-contact", "side": side},
            headers=auth(SERVICE),
        )
        assert confirmed.status_code == 200, confirmed.text
    await stage_is(api, OFFICER, app_id, "REPORTING")  # the stay is over: the travel timers fired at once

    # Reporting: the traveller uploads a boarding pass and reports with the item the upload answered.
    early = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": "vop-validator", "decision": "accept"},
        headers=auth(OFFICER),
    )
    assert early.status_code == 409 and refusal(early) == "WrongStage"
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
    assert unknown_file.status_code == 422 and refusal(unknown_file) == "EvidenceRefused"
    assert fields(unknown_file) == ["evidence"]
    submitted = await api.post(f"/exchanges/{app_id}/updates/submit_report", json=report, headers=auth(APPLICANT))
    assert submitted.status_code == 200 and submitted.json()["report_submitted"] is True, submitted.text
    own_report = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": APPLICANT_SUBJECT, "decision": "accept"},
        headers=auth(OFFICER),
    )
    assert own_report.status_code == 403 and refusal(own_report) == "NotAllowed", "four-eyes"
    accepted = await api.post(
        f"/exchanges/{app_id}/updates/validate_report",
        json={"actor_id": "vop-validator", "decision": "accept"},
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
    assert short.status_code == 422 and fields(short) == ["amount_cents"]
    sent = await api.post(path, json=confirmation, headers=auth(SERVICE))
    assert sent.status_code == 202 and sent.json() == {"application_id": app_id, "signal": "confirm_payment"}
    paid = await stage_is(api, OPS, app_id, "PAID")
    assert (paid["paid_cents"], paid["payment_reference"]) == (GRANT_CENTS, "SEPA-E2E-0001")
    await listed(api, OPS, 1, stage="PAID", partnership=partnership)  # the order row carries the confirmation

    # The repeat is answered from the order row, though the workflow has ended.
    repeat = await api.post(path, json=confirmation, headers=auth(SERVICE))
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["already_confirmed"] is True and repeat.json()["payment_reference"] == "SEPA-E2E-0001"
    assert repeat.json()["confirmed_by"] == "finance-fia" and repeat.json()["confirmed_at"]
    other = await api.post(path, json={**confirmation, "payment_reference": "SEPA-E2E-9999"}, headers=auth(SERVICE))
    assert other.status_code == 409 and fields(other) == ["payment_reference"]

    # The records, over HTTP too: ledger history, the explanation and the partnership's budget.
    ledger = await api.get(f"/exchanges/{app_id}/ledger", headers=auth(OPS))
    assert sorted(t["kind"] for t in ledger.json()) == ["hold", "pay_out", "post"]
    explanation = await api.get(f"/exchanges/{app_id}/explanation", headers=auth(APPLICANT))
    assert explanation.status_code == 200
    events = [d["event"] for d in explanation.json()["decisions"]]
    assert {"screening_decided", "priced", "payment_ordered"} <= set(events), events
    budgets = {b["partnership_id"]: b for b in (await api.get("/budgets", headers=auth(OPS))).json()}
    assert (budgets[partnership]["held_cents"], budgets[partnership]["paid_cents"]) == (0, GRANT_CENTS)
