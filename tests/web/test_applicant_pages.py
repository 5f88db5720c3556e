"""The applicant's pages (clients/web/pages/applicant.py) over HTTP, in process, on the real stack: their
exchanges with what is missing, signatures and match confirmations for the parties they act for, evidence
uploaded and the report submitted through forms, withdrawal with its confirmation, forged forms refused.
Dates follow docs/adr/0004-demo-dates.md: the back office imports a record of a stay that ended weeks ago."""

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
    auth,
    body,
    officer_of,
    reviewed,
    seed_over_http,
    stage_is,
    status_until,
    stay_that_ended_weeks_ago,
    token_table,
)
from tests.reporting.documents import pdf
from tests.web.test_sessions import form_field, sign_in

HO_SIGNATORY = "tok-web-ho-signatory-00"
VO_SIGNATORY = "tok-web-vo-signatory-00"
HOP_SERVICE = "tok-web-hop-service-000"


def fields(page: str, **values: str) -> dict[str, str]:
    """A form's fields: the session's CSRF token from `page`, a fresh key for this submission, the values."""
    return {"csrf_token": form_field(page, "csrf_token"), "form_key": uuid.uuid4().hex, **values}


def row_of(page: str, application_id: str) -> str:
    """The table row of one exchange on the applicant's list (the session's applicant has many exchanges)."""
    rows = [row for row in page.split("<tr>") if f'href="/app/exchanges/{application_id}"' in row]
    assert len(rows) == 1, f"{application_id} is listed {len(rows)} times"
    return rows[0].split("</tr>")[0]


class Programme:
    """One partnership with a distinct host partnership, its panel and budget, and the people of one exchange:
    the applicant who submitted it (no organisation), the host's and the visitor's signatories (applicants
    naming their organisation) and the host partnership's CRM."""

    def __init__(self, make_api: MakeApi, application: dict[str, Any], partnership: str) -> None:
        self.make_api = make_api
        self.application = application
        self.partnership = partnership
        self.app_id: str = application["application_id"]
        host_org, visitor_org = application["host"]["organisation_id"], application["visitor"]["organisation_id"]
        self.tokens = {
            **token_table(partnership),
            HO_SIGNATORY: Principal(subject="ho-hanna", role="applicant", organisations=frozenset({host_org})),
            VO_SIGNATORY: Principal(subject="vo-vera", role="applicant", organisations=frozenset({visitor_org})),
            HOP_SERVICE: Principal(
                subject="crm-host", role="service", partnerships=frozenset({application["host_partnership_id"]})
            ),
        }
        self.api = make_api(self.tokens)

    async def web(self, token: str) -> httpx.AsyncClient:
        web = self.make_api(self.tokens)
        signed = await sign_in(web, token)
        assert signed.status_code == 303, signed.text
        return web

    async def status(self) -> dict[str, Any]:
        answer = await self.api.get(f"/exchanges/{self.app_id}", headers=auth(OFFICER))
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


async def imported(make_api: MakeApi, *, ended_weeks_ago: int | None = 3) -> Programme:
    """An exchange the back office imported for the applicant: a stay that ended weeks ago (its travel timers
    due at once), or with `ended_weeks_ago=None` a stay still ahead."""
    partnership = f"p-webapp-{uuid.uuid4().hex[:8]}"
    overrides: dict[str, Any] = {"host_partnership_id": f"{partnership}-host", "submitted_by": APPLICANT_SUBJECT}
    if ended_weeks_ago is not None:
        start, end = stay_that_ended_weeks_ago("FR", ended_weeks_ago)
        submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
        overrides |= {"start_date": start.isoformat(), "end_date": end.isoformat()}
        overrides["submitted_at"] = submitted_at.isoformat()
    programme = Programme(make_api, body(partnership, **overrides), partnership)
    await seed_over_http(programme.api, partnership, budget_cents=1_000_000)
    started = await programme.api.post("/exchanges", json=programme.application, headers=auth(OFFICER))
    assert started.status_code == 201, started.text
    return programme


async def agreed_through_the_pages(programme: Programme) -> None:
    """The host's and the visitor's people sign and confirm the match on the page, each for their own party
    only (another party's signature is refused on the form); the partnerships sign over the API."""
    app_id = programme.app_id
    for token, party, side in ((HO_SIGNATORY, "HO", "host"), (VO_SIGNATORY, "VO", "visitor")):
        web = await programme.web(token)
        page = await web.get(f"/app/exchanges/{app_id}")
        assert page.status_code == 200, page.text
        assert f"({party})</button>" in page.text, "the page offers their own party's signature"
        other = "VO" if party == "HO" else "HO"
        assert f"({other})</button>" not in page.text, "and no other party's"
        not_theirs = await web.post(f"/app/exchanges/{app_id}/sign", data=fields(page.text, party=other))
        assert not_theirs.status_code == 403, not_theirs.text
        assert "Nothing was changed." in not_theirs.text
        signed = await web.post(f"/app/exchanges/{app_id}/sign", data=fields(page.text, party=party))
        assert signed.status_code == 303, signed.text
        confirmed = await web.post(f"/app/exchanges/{app_id}/match", data=fields(page.text, side=side))
        assert confirmed.status_code == 303, confirmed.text
    after = await programme.status()
    assert after["signatures"] == {"HO": "ho-hanna", "VO": "vo-vera"}
    assert after["match_confirmed_by"] == {"host": "ho-hanna", "visitor": "vo-vera"}
    sign = f"/exchanges/{app_id}/updates/sign_commitment"
    for token, signature in (
        (HOP_SERVICE, {"actor_id": "hop-hugo", "party": "HOP"}),
        (OFFICER, {"actor_id": officer_of(programme.partnership), "party": "VOP"}),
    ):
        done = await programme.api.post(sign, json=signature, headers=auth(token))
        assert done.status_code == 200, done.text


async def test_an_applicant_sees_what_is_missing_and_parties_sign_on_the_page(make_api: MakeApi) -> None:
    """The applicant's list shows their exchange in AGREEMENT with each missing signature and confirmation; the
    page offers them no party's act (they act for none); the parties' people sign through their pages."""
    programme = await imported(make_api)
    app_id = programme.app_id
    await reviewed(programme.api, programme.partnership, app_id)
    await stage_is(programme.api, OFFICER, app_id, "AGREEMENT")
    applicant = await programme.web(APPLICANT)
    mine = await applicant.get("/app/mine")
    assert mine.status_code == 200, mine.text
    row = row_of(mine.text, app_id)
    assert "AGREEMENT" in row
    assert "Signature of the Commitment to Quality by the host organisation (HO)" in row
    assert "Match confirmation by the visitor organisation" in row
    assert "Sign for the" not in (await applicant.get(f"/app/exchanges/{app_id}")).text, "no party of theirs"
    await agreed_through_the_pages(programme)
    await stage_is(programme.api, OFFICER, app_id, "REPORTING")  # the stay is over: the timers fired at once
    row = row_of((await applicant.get("/app/mine")).text, app_id)
    assert "Signature of" not in row
    assert "The closing report" in row


async def test_an_applicant_uploads_evidence_and_submits_the_report_through_forms(make_api: MakeApi) -> None:
    """In REPORTING the applicant uploads a real PDF and submits the report through forms, and the API records
    both; a report without evidence is refused on the form with what was typed kept, and changes nothing."""
    programme = await imported(make_api)
    app_id = programme.app_id
    await reviewed(programme.api, programme.partnership, app_id)
    await stage_is(programme.api, OFFICER, app_id, "AGREEMENT")
    await agreed_through_the_pages(programme)
    await stage_is(programme.api, OFFICER, app_id, "REPORTING")
    applicant = await programme.web(APPLICANT)
    page = await applicant.get(f"/app/exchanges/{app_id}")
    assert "The closing report" in page.text
    assert 'enctype="multipart/form-data"' in page.text
    no_evidence = await applicant.post(
        f"/app/exchanges/{app_id}/report", data=fields(page.text, summary="Goals met; the agenda was followed.")
    )
    assert no_evidence.status_code == 422, no_evidence.text
    assert "<strong>evidence</strong>" in no_evidence.text
    assert "Goals met; the agenda was followed." in no_evidence.text, "what was typed is kept"
    assert (await programme.status())["report_submitted"] is False

    document = pdf(f"boarding pass {app_id}")
    uploaded = await applicant.post(
        f"/app/exchanges/{app_id}/evidence",
        data=fields(page.text, kind="boarding_pass", name="Boarding pass, outbound"),
        files={"file": ("boarding-pass.pdf", document, "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    page = await applicant.get(uploaded.headers["location"])
    assert "Boarding pass, outbound was uploaded as a boarding pass." in page.text
    records = (await programme.api.get(f"/exchanges/{app_id}/evidence", headers=auth(OFFICER))).json()
    assert [(r["name"], r["size_bytes"]) for r in records] == [("Boarding pass, outbound", len(document))]
    sha256 = records[0]["sha256"]
    assert f'value="{sha256}" checked' in page.text, "the upload is offered for the report"

    report = fields(page.text, summary="Goals met; the agenda was followed.", evidence=sha256)
    submitted = await applicant.post(f"/app/exchanges/{app_id}/report", data=report)
    assert submitted.status_code == 303, submitted.text
    assert "Your report was submitted" in (await applicant.get(submitted.headers["location"])).text
    reported = await status_until(programme.api, OFFICER, app_id, lambda s: s["report_submitted"])
    assert reported["stage"] == "REPORTING"
    row = row_of((await applicant.get("/app/mine")).text, app_id)
    assert "Validation of the report by the visitor&#39;s partnership" in row


async def test_a_refused_upload_is_shown_on_the_form_and_stores_nothing(make_api: MakeApi) -> None:
    """A file that is not a PDF, PNG or JPEG is refused by the API's checks and shown on the upload form."""
    programme = await imported(make_api, ended_weeks_ago=None)
    applicant = await programme.web(APPLICANT)
    page = await applicant.get(f"/app/exchanges/{programme.app_id}")
    refused = await applicant.post(
        f"/app/exchanges/{programme.app_id}/evidence",
        data=fields(page.text, kind="travel_invoice"),
        files={"file": ("invoice.pdf", b"not a document at all", "application/pdf")},
    )
    assert refused.status_code == 422, refused.text
    assert 'id="evidence-refused"' in refused.text
    records = await programme.api.get(f"/exchanges/{programme.app_id}/evidence", headers=auth(OFFICER))
    assert records.json() == []


async def test_an_applicant_withdraws_after_confirming_and_a_forged_form_does_nothing(make_api: MakeApi) -> None:
    """Withdrawal needs the confirmation box; without the CSRF token it is refused (403); with both the
    exchange is WITHDRAWN and the applicant's list shows it."""
    programme = await imported(make_api, ended_weeks_ago=None)
    app_id = programme.app_id
    applicant = await programme.web(APPLICANT)
    page = await applicant.get(f"/app/exchanges/{app_id}")
    assert page.status_code == 200, page.text
    assert "Withdraw this application" in page.text
    assert "Nothing from the parties; the exchange is waiting for" in page.text
    forged = await applicant.post(
        f"/app/exchanges/{app_id}/withdraw",
        data={**fields(page.text, reason="plans changed", confirm="yes"), "csrf_token": ""},
    )
    assert forged.status_code == 403
    unconfirmed = await applicant.post(f"/app/exchanges/{app_id}/withdraw", data=fields(page.text, reason="plans"))
    assert unconfirmed.status_code == 422
    assert "tick the box" in unconfirmed.text
    assert (await programme.status())["stage"] not in ("WITHDRAWN",)

    withdrawn = await applicant.post(
        f"/app/exchanges/{app_id}/withdraw", data=fields(page.text, reason="plans changed", confirm="yes")
    )
    assert withdrawn.status_code == 303, withdrawn.text
    assert withdrawn.headers["location"] == "/app/mine"
    await stage_is(programme.api, OFFICER, app_id, "WITHDRAWN")


async def test_another_applicant_is_refused_the_exchange(make_api: MakeApi) -> None:
    """Need to know: an applicant who neither submitted the exchange nor acts for a party of it is refused its
    page (404, as if it did not exist: issue 16), and their list does not show it."""
    programme = await imported(make_api, ended_weeks_ago=None)
    stranger = await programme.web("tok-applicant-11111111")
    assert (await stranger.get(f"/app/exchanges/{programme.app_id}")).status_code == 404
    mine = await stranger.get("/app/mine")
    assert mine.status_code == 200
    assert programme.app_id not in mine.text
