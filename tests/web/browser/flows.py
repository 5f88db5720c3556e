"""Steps the browser tests share: exchanges started through the API (as the back office would), and a
reviewer's review through the inbox and the review form, as a person does it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from playwright.async_api import Page, expect

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
    officer_of,
    open_reviewers,
    pdf,
    stage_is,
    status_until,
    stay_that_ended_weeks_ago,
)
from tests.web.browser.harness import Site, assert_accessible, page_label
from tests.workflows.conftest import REVIEWERS, panel_member


async def start_exchange(site: Site, *, stay_over: bool = False) -> str:
    """An application of the applicant, started by the officer; in REVIEW with two reviewers assigned when this
    returns. `stay_over`: imported with its original submission date for a stay that ended three weeks ago
    (docs/adr/0004-demo-dates.md), so the travel timers are due at once and it can reach PAID on the dev server."""
    overrides: dict[str, str] = {"submitted_by": APPLICANT_SUBJECT}
    if stay_over:
        start, end = stay_that_ended_weeks_ago("FR")
        submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
        overrides |= {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "submitted_at": submitted_at.isoformat(),
        }
    data = body(site.partnership, **overrides)
    started = await site.api.post("/exchanges", json=data, headers=auth(OFFICER))
    assert started.status_code == 201, started.text
    application_id: str = data["application_id"]
    await open_reviewers(site.api, OFFICER, application_id)
    return application_id


async def assigned_reviewers(site: Site, application_id: str) -> tuple[list[str], str]:
    """The names (rev-a, rev-b, rev-c) of the two reviewers assigned, and of the one who is not."""
    by_id = {panel_member(site.partnership, name): name for name in REVIEWERS}
    assigned = [by_id[member] for member in await open_reviewers(site.api, OFFICER, application_id)]
    outsider = next(name for name in REVIEWERS if name not in assigned)
    return assigned, outsider


async def review_in_browser(page: Page, site: Site, application_id: str, *, score: str = "4") -> None:
    """From the inbox: open the exchange, score every criterion, approve, comment, submit; see it recorded."""
    await page.goto(site.url("/inbox"))
    await assert_accessible(page)
    link = page.get_by_role("link", name=application_id, exact=True)
    await expect(link).to_be_visible()
    await link.click()
    await page.wait_for_url(site.url(f"/exchanges/{application_id}"))
    await assert_accessible(page, page_label(page.url, (application_id,)) + " (review form)")
    review_form = page.locator(f"form[action$='/exchanges/{application_id}/review']")
    scores = review_form.get_by_role("combobox")
    count = await scores.count()
    assert count >= 1, "the review form offers no criterion to score"
    for index in range(count):
        await scores.nth(index).select_option(score)
    await review_form.get_by_label("Approve").check()
    await review_form.get_by_label("Comment for the record").fill("A clear agenda and a credible host.")
    await review_form.get_by_role("button", name="Submit your review").click()
    await expect(page.get_by_role("status")).to_contain_text("Your review was recorded")
    await assert_accessible(page, page_label(page.url, (application_id,)) + " (after a review)")


async def expect_on_timeline(page: Page, text: str) -> None:
    """The timeline (the read model's audit trail, written a moment after the workflow acts) shows `text`."""
    timeline = page.locator("ol.timeline")
    for _ in range(40):
        if await timeline.count() and text in await timeline.inner_text():
            return
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(timeline).to_contain_text(text)


# The steps no page of ours takes, sent through the REST API by whoever takes them elsewhere ----------------------

HO_SIGNATORY = "tok-web-ho-signatory-000"
VO_SIGNATORY = "tok-web-vo-signatory-000"


async def agree(site: Site, make_api: MakeApi, application_id: str) -> None:
    """AGREEMENT through the API: each of the four parties signs by its own principal, and both organisations
    confirm the match (the host's and the visitor's people, the partnership's CRM and its officer)."""
    status = (await site.api.get(f"/exchanges/{application_id}", headers=auth(OFFICER))).json()
    parties: dict[str, str] = status["parties"]
    signatories = {
        HO_SIGNATORY: Principal(subject="ho-hanna", role="applicant", organisations=frozenset({parties["HO"]})),
        VO_SIGNATORY: Principal(subject="vo-vera", role="applicant", organisations=frozenset({parties["VO"]})),
    }
    api = make_api({**site.tokens, **signatories})
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (HO_SIGNATORY, "sign_commitment", {"actor_id": "ho-hanna", "party": "HO"}),
        (VO_SIGNATORY, "sign_commitment", {"actor_id": "vo-vera", "party": "VO"}),
        (PARTY_SERVICE, "sign_commitment", {"actor_id": "hop-hugo", "party": "HOP"}),
        (OFFICER, "sign_commitment", {"actor_id": officer_of(site.partnership), "party": "VOP"}),
        (HO_SIGNATORY, "confirm_match", {"actor_id": "ho-hanna", "side": "host"}),
        (VO_SIGNATORY, "confirm_match", {"actor_id": "vo-vera", "side": "visitor"}),
    ]
    for token, update, request in steps:
        done = await api.post(f"/exchanges/{application_id}/updates/{update}", json=request, headers=auth(token))
        assert done.status_code == 200, f"{update} {request}: {done.text}"


async def report_over_api(site: Site, application_id: str) -> None:
    """The applicant uploads a boarding pass and reports through the API (for exchanges no test reports by hand)."""
    uploaded = await site.api.post(
        f"/exchanges/{application_id}/evidence",
        files={"file": ("boarding-pass.pdf", pdf(application_id), "application/pdf")},
        data={"kind": "boarding_pass"},
        headers=auth(APPLICANT),
    )
    assert uploaded.status_code == 201, uploaded.text
    report = {"actor_id": APPLICANT_SUBJECT, "summary": "Goals met.", "evidence": [uploaded.json()]}
    done = await site.api.post(
        f"/exchanges/{application_id}/updates/submit_report", json=report, headers=auth(APPLICANT)
    )
    assert done.status_code == 200, done.text


async def validate_and_pay(site: Site, application_id: str) -> None:
    """The visitor partnership's officer accepts the report, and finance confirms the payment order: PAID."""
    accepted = await site.api.post(
        f"/exchanges/{application_id}/updates/validate_report",
        json={"actor_id": officer_of(site.partnership), "decision": "accept"},
        headers=auth(OFFICER),
    )
    assert accepted.status_code == 200, accepted.text
    ordered = await status_until(
        site.api, OPS, application_id, lambda s: s["stage"] == "PAYMENT" and s["payment_order_id"] is not None
    )
    confirmation = {
        "payment_order_id": ordered["payment_order_id"],
        "amount_cents": ordered["paid_cents"],
        "payment_reference": f"SEPA-WEB-{application_id[-6:]}",
        "confirmed_by": "finance-fia",
    }
    sent = await site.api.post(
        f"/exchanges/{application_id}/signals/confirm_payment", json=confirmation, headers=auth(SERVICE)
    )
    assert sent.status_code == 202, sent.text
    await stage_is(site.api, OPS, application_id, "PAID")
