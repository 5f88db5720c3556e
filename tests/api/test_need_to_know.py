"""Need to know over HTTP (issue 11, item 3): a conflict removes an exchange from the reviewer's view, and the
parties' side never learns who reviews them.
"""

from __future__ import annotations

import json

import httpx

from clients.api.views import LEFT_OUT, RESHAPED, PartyExchangeView
from schemas.exchange import ExchangeStatus
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    PARTY_SERVICE,
    auth,
    body,
    cancel,
    open_reviewers,
    reviewer_token,
    stage_is,
)
from tests.workflows.conftest import REVIEWERS, panel_member, review


async def test_a_declared_conflict_removes_the_exchange_from_the_reviewers_reads(
    api: httpx.AsyncClient, partnership: str
) -> None:
    """Once a reviewer declares a conflict, the exchange's status, explanation and evidence answer them 404, the
    very answer of an exchange that does not exist (issue 16: they may no longer learn it exists), and it is in
    neither their list nor their inbox; the other reviewer still reads it."""
    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(OFFICER))).status_code == 201
    app_id = data["application_id"]
    recusing, staying = await open_reviewers(api, OFFICER, app_id)
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    token = reviewer_token(names[recusing])
    reads = (f"/exchanges/{app_id}", f"/exchanges/{app_id}/explanation", f"/exchanges/{app_id}/evidence")
    assert (await api.get(reads[0], headers=auth(token))).status_code == 200, "assigned: reads it"
    declared = await api.post(
        f"/exchanges/{app_id}/updates/declare_conflict",
        json={"actor_id": recusing, "reason": "I advised the host last year"},
        headers=auth(token),
    )
    assert declared.status_code == 200, declared.text
    for path in reads:
        answer = await api.get(path, headers=auth(token))
        assert answer.status_code == 404, (path, answer.text)
        absent = await api.get(path.replace(app_id, f"{app_id}-none"), headers=auth(token))
        assert absent.status_code == 404, (path, absent.text)
        assert answer.json() == {**absent.json(), **_naming(absent.json(), app_id)}, "no difference to learn from"
    listed = (await api.get("/exchanges", params={"limit": 100}, headers=auth(token))).json()
    assert app_id not in {row["application_id"] for row in listed["items"]}
    inbox = (await api.get(f"/reviewers/{recusing}/inbox", headers=auth(token))).json()
    assert app_id not in {item["application_id"] for item in inbox}
    again = await api.post(f"/exchanges/{app_id}/updates/submit_review", json=review(recusing), headers=auth(token))
    assert again.status_code == 404, "no longer theirs to review, nor to know of"
    assert "refusal" not in again.json(), "no longer theirs to review"
    other = reviewer_token(names[staying])
    assert (await api.get(reads[0], headers=auth(other))).status_code == 200
    await cancel(api, partnership, app_id)


def _naming(problem: dict[str, object], app_id: str) -> dict[str, object]:
    """`problem` (about `<app_id>-none`) as it reads for `app_id`: the id the caller sent is all that differs."""
    text = json.dumps(problem).replace(f"{app_id}-none", app_id)
    named: dict[str, object] = json.loads(text)
    return named


def test_the_party_view_is_the_status_less_the_reviewers() -> None:
    """The party view has every field of the status but the alerts and the reshaped review, so a field added to
    the status is a decision to make here, not a leak."""
    status_fields = set(ExchangeStatus.model_fields) - LEFT_OUT
    assert set(PartyExchangeView.model_fields) == status_fields | {"view"}
    assert status_fields >= RESHAPED


async def test_parties_read_counts_and_scores_never_names(api: httpx.AsyncClient, partnership: str) -> None:
    """In REVIEW the applicant and the partnership's service read how many reviewers are assigned, not who; after
    a veto the rejection's reason and the explanation keep the comment and the scores under pseudonyms; the
    officer reads every name."""
    data = body(partnership, submitted_by=APPLICANT_SUBJECT)
    assert (await api.post("/exchanges", json=data, headers=auth(APPLICANT))).status_code == 201
    app_id = data["application_id"]
    assigned = await open_reviewers(api, OFFICER, app_id)
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    organisations = {f"org{i}-{partnership}" for i in range(len(REVIEWERS))}
    for token in (APPLICANT, PARTY_SERVICE):
        seen = await api.get(f"/exchanges/{app_id}", headers=auth(token))
        assert seen.status_code == 200, seen.text
        assert seen.json()["view"] == "party", seen.text
        assert seen.json()["review"]["reviewers_assigned"] == 2
        assert seen.json()["review"]["reviews_submitted"] == 0
        assert not any(name in seen.text for name in (*names, *organisations)), seen.text
    full = (await api.get(f"/exchanges/{app_id}", headers=auth(OFFICER))).json()
    assert {a["reviewer_id"] for a in full["review"]["assignments"]} == set(assigned)

    veto = review(assigned[0], recommendation="reject") | {"comment": "The agenda has no measurable goal."}
    vetoed = await api.post(
        f"/exchanges/{app_id}/updates/submit_review", json=veto, headers=auth(reviewer_token(names[assigned[0]]))
    )
    assert vetoed.status_code == 200, vetoed.text
    quorum = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(assigned[1]),
        headers=auth(reviewer_token(names[assigned[1]])),
    )
    assert quorum.status_code == 200, quorum.text
    rejected = await stage_is(api, APPLICANT, app_id, "REJECTED")
    assert assigned[0] not in str(rejected)
    last = rejected["history"][-1]
    assert last["actor_id"] == "a reviewer", last
    assert "The agenda has no measurable goal." in last["reason"], last
    explained = await api.get(f"/exchanges/{app_id}/explanation", headers=auth(APPLICANT))
    assert explained.status_code == 200
    reviews = [d for d in explained.json()["decisions"] if d["event"] == "review_submitted"]
    assert [(d["actor_id"], d["details"]["recommendation"]) for d in reviews] == [
        ("reviewer 1", "reject"),
        ("reviewer 2", "approve"),
    ]
    assert reviews[0]["details"]["scores"] == veto["scores"]
    assert reviews[0]["reason"] == veto["comment"]
    assert not any(name in explained.text for name in (*names, *organisations)), explained.text
    officer_view = await api.get(f"/exchanges/{app_id}/explanation", headers=auth(OFFICER))
    assert assigned[0] in officer_view.text
