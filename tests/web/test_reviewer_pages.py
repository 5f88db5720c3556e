"""The reviewer's pages (clients/web/pages/reviewer.py) over HTTP, in process, on the real stack: the inbox, the
exchange page and its review form to quorum, refusals shown on the form with nothing changed, need to know.
The browser tests (test_browser_*) drive the same pages in Chromium; these stay fast and exact."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    auth,
    body,
    open_reviewers,
    reviewer_token,
    seed_over_http,
    stage_is,
    token_table,
)
from tests.web.test_sessions import form_field, sign_in
from tests.workflows.conftest import REVIEWERS, panel_member

CRITERIA = ("relevance", "agenda_quality", "expected_impact")  # policy 2022.1's rubric


def fields(page: str, **values: str) -> dict[str, str]:
    """A form's fields: the session's CSRF token from `page` (every page carries it), a fresh key for this
    submission, and the values."""
    return {"csrf_token": form_field(page, "csrf_token"), "form_key": uuid.uuid4().hex, **values}


def review_form(page: str, *, score: int = 4, recommendation: str = "approve") -> dict[str, str]:
    """The review form as a person fills it in: every criterion scored, a recommendation, a comment."""
    scores = {f"score.{criterion}": str(score) for criterion in CRITERIA}
    return fields(page, recommendation=recommendation, comment="A clear agenda with measurable goals.", **scores)


async def exchange_in_review(make_api: MakeApi) -> tuple[httpx.AsyncClient, str, str, dict[str, str]]:
    """A partnership with its panel and budget, one exchange started by the back office and waiting in REVIEW:
    the API client (as anyone), the partnership, the application id and reviewer id -> their token."""
    partnership = f"p-webrev-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    await seed_over_http(api, partnership, budget_cents=1_000_000)
    data = body(partnership, submitted_by=APPLICANT_SUBJECT)
    started = await api.post("/exchanges", json=data, headers=auth(OFFICER))
    assert started.status_code == 201, started.text
    tokens = {panel_member(partnership, name): reviewer_token(name) for name in REVIEWERS}
    return api, partnership, data["application_id"], tokens


async def signed_in_as(make_api: MakeApi, partnership: str, token: str) -> httpx.AsyncClient:
    web = make_api(token_table(partnership))
    signed = await sign_in(web, token)
    assert signed.status_code == 303, signed.text
    return web


async def status(api: httpx.AsyncClient, application_id: str) -> dict[str, Any]:
    answer = await api.get(f"/exchanges/{application_id}", headers=auth(OFFICER))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_a_review_through_the_form_is_recorded_and_two_reach_quorum(make_api: MakeApi) -> None:
    """Each assigned reviewer finds the exchange in their inbox, reads it (screening explained, the policy's
    rubric) and reviews through the form; the API records each review, and the second moves the exchange on."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    assigned = await open_reviewers(api, OFFICER, app_id)
    for number, member in enumerate(assigned, start=1):
        web = await signed_in_as(make_api, partnership, tokens[member])
        inbox = await web.get("/app/inbox")
        assert inbox.status_code == 200, inbox.text
        assert f'href="/app/exchanges/{app_id}"' in inbox.text
        page = await web.get(f"/app/exchanges/{app_id}")
        assert page.status_code == 200, page.text
        assert "Eligible" in page.text, "the screening result is explained"
        assert "Lyon Optics Hub" in page.text, "the application's organisations are shown"
        assert "Learn how the host runs its shared clean-room." in page.text, "and its goals"
        assert "Policy 2022.1: score each criterion from 1 (weakest) to 5 (strongest)" in page.text
        for criterion in CRITERIA:
            assert f'name="score.{criterion}"' in page.text
        sent = await web.post(f"/app/exchanges/{app_id}/review", data=review_form(page.text))
        assert sent.status_code == 303, sent.text
        assert sent.headers["location"] == f"/app/exchanges/{app_id}"
        after = await web.get(sent.headers["location"])
        assert "Your review was recorded." in after.text
        recorded = await status(api, app_id)
        assert member in recorded["review"]["submitted_by"], recorded["review"]
        assert len(recorded["review"]["submitted_by"]) == number
    await stage_is(api, OFFICER, app_id, "AGREEMENT")  # quorum: approved, priced and funded


async def test_a_refused_review_is_shown_on_the_form_and_changes_nothing(make_api: MakeApi) -> None:
    """A second review by the same reviewer, then one after the review stage ended, each come back as the form
    with the API's refusal and its 4xx status; the workflow's state is what it was."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    first, second = await open_reviewers(api, OFFICER, app_id)
    web = await signed_in_as(make_api, partnership, tokens[first])
    page = await web.get(f"/app/exchanges/{app_id}")
    assert (await web.post(f"/app/exchanges/{app_id}/review", data=review_form(page.text))).status_code == 303
    before = await status(api, app_id)

    page = await web.get(f"/app/exchanges/{app_id}")
    assert "Submit your review" not in page.text, "an answered assignment offers no review form"
    again = await web.post(
        f"/app/exchanges/{app_id}/review",
        data=review_form(page.text, recommendation="reject"),
    )
    assert 400 <= again.status_code < 500, again.text
    assert "Nothing was changed." in again.text
    assert 'id="review-refused"' in again.text, "the refusal is on the review form"
    assert 'value="reject" checked' in again.text, "what the reviewer chose is kept"
    assert (await status(api, app_id))["review"] == before["review"]

    other = await signed_in_as(make_api, partnership, tokens[second])
    other_page = await other.get(f"/app/exchanges/{app_id}")
    assert (await other.post(f"/app/exchanges/{app_id}/review", data=review_form(other_page.text))).status_code == 303
    await stage_is(api, OFFICER, app_id, "AGREEMENT")
    late = await other.post(f"/app/exchanges/{app_id}/review", data=review_form(other_page.text))
    assert late.status_code == 409, late.text
    assert "Nothing was changed." in late.text
    assert (await status(api, app_id))["stage"] == "AGREEMENT"


async def test_a_review_with_a_score_out_of_the_scale_names_the_field(make_api: MakeApi) -> None:
    """The API's strict checks reach the form: a score outside the policy's scale is refused (422) naming it."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    member = (await open_reviewers(api, OFFICER, app_id))[0]
    web = await signed_in_as(make_api, partnership, tokens[member])
    page = await web.get(f"/app/exchanges/{app_id}")
    refused = await web.post(f"/app/exchanges/{app_id}/review", data=review_form(page.text, score=9))
    assert refused.status_code == 422, refused.text
    assert re.search(r"<strong>scores[^<]*</strong>", refused.text), "the refused field is named"
    assert (await status(api, app_id))["review"]["submitted_by"] == []


async def test_a_reviewer_not_assigned_is_refused_the_exchange_and_its_forms(make_api: MakeApi) -> None:
    """Need to know: a reviewer of the panel who is not assigned gets the API's refusal as an error page, their
    inbox does not list the exchange, and a review they post changes nothing."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    assigned = await open_reviewers(api, OFFICER, app_id)
    outsider = next(member for member in tokens if member not in assigned)
    web = await signed_in_as(make_api, partnership, tokens[outsider])
    inbox = await web.get("/app/inbox")
    assert inbox.status_code == 200, inbox.text
    assert app_id not in inbox.text
    page = await web.get(f"/app/exchanges/{app_id}")
    assert page.status_code == 404, page.text  # not theirs to know of (issue 16)
    assert "Submit your review" not in page.text
    posted = await web.post(f"/app/exchanges/{app_id}/review", data=review_form(inbox.text))
    assert posted.status_code == 404, posted.text
    assert (await status(api, app_id))["review"]["submitted_by"] == []


async def test_a_review_posted_without_the_csrf_token_is_refused(make_api: MakeApi) -> None:
    """A forged form (no session CSRF token) is refused with 403 before anything reaches the API."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    member = (await open_reviewers(api, OFFICER, app_id))[0]
    web = await signed_in_as(make_api, partnership, tokens[member])
    page = await web.get(f"/app/exchanges/{app_id}")
    forged = {**review_form(page.text), "csrf_token": "forged"}
    refused = await web.post(f"/app/exchanges/{app_id}/review", data=forged)
    assert refused.status_code == 403
    assert "security token" in refused.text
    assert (await status(api, app_id))["review"]["submitted_by"] == []


async def test_a_reviewer_declares_a_conflict_and_the_exchange_leaves_their_inbox(make_api: MakeApi) -> None:
    """Declaring a conflict through the form recuses the reviewer: the inbox no longer lists the exchange and
    its page is refused to them from then on."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    member = (await open_reviewers(api, OFFICER, app_id))[0]
    web = await signed_in_as(make_api, partnership, tokens[member])
    page = await web.get(f"/app/exchanges/{app_id}")
    empty = await web.post(f"/app/exchanges/{app_id}/conflict", data=fields(page.text, reason=" "))
    assert empty.status_code == 422, "a reason is required"
    assert 'id="conflict-refused"' in empty.text
    declared = await web.post(f"/app/exchanges/{app_id}/conflict", data=fields(page.text, reason="I advised it"))
    assert declared.status_code == 303, declared.text
    assert declared.headers["location"] == "/app/inbox"
    inbox = await web.get("/app/inbox")
    assert "conflict of interest" in inbox.text
    assert f'href="/app/exchanges/{app_id}"' not in inbox.text
    assert (await web.get(f"/app/exchanges/{app_id}")).status_code == 404
    recused = [a for a in (await status(api, app_id))["review"]["assignments"] if a["reviewer_id"] == member]
    assert [a["status"] for a in recused] == ["recused"]


async def test_a_reviewer_requests_changes_and_the_applicant_sees_them(make_api: MakeApi) -> None:
    """A request for changes through the form reaches the workflow, and the applicant's list names it as what
    is missing."""
    api, partnership, app_id, tokens = await exchange_in_review(make_api)
    member = (await open_reviewers(api, OFFICER, app_id))[0]
    web = await signed_in_as(make_api, partnership, tokens[member])
    page = await web.get(f"/app/exchanges/{app_id}")
    changes = "Please add a day-by-day agenda for the stay."
    sent = await web.post(f"/app/exchanges/{app_id}/changes", data=fields(page.text, changes=changes))
    assert sent.status_code == 303, sent.text
    assert "Your request for changes was sent" in (await web.get(sent.headers["location"])).text
    assert (await status(api, app_id))["review"]["changes_requested"] == changes
    applicant = await signed_in_as(make_api, partnership, APPLICANT)
    mine = await applicant.get("/app/mine")
    assert f"the review asked for changes ({changes})" in mine.text
