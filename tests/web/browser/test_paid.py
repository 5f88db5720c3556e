"""From review to PAID, with the people's steps in a real browser: the two assigned reviewers review through the
form, the applicant uploads a real PDF as evidence and submits the closing report on their exchange page, and
the officer sees PAID on the exchange's timeline. The steps no page of ours takes are sent through the REST
API by the principals who take them elsewhere (the parties' signatures and match confirmations, the visitor
partnership's validation, finance's confirm_payment), as tests/api/test_paid_over_http.py does.

The stay ended three weeks ago and the application is imported with its original submission date
(docs/adr/0004-demo-dates.md), so the travel timers are due at once on the dev server and no clock is faked.
"""

from __future__ import annotations

import pytest
from playwright.async_api import FilePayload, Page, expect

from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    OFFICER,
    officer_of,
    pdf,
    stage_is,
)
from tests.web.browser.flows import (
    agree,
    assigned_reviewers,
    expect_on_timeline,
    review_in_browser,
    start_exchange,
    validate_and_pay,
)
from tests.web.browser.harness import SignedInPage, Site, assert_accessible, page_label


# One exchange through every stage on the dev server with three people in a browser: about 25 s alone, more on a
# loaded 2-CPU machine; 180 s leaves room without hiding a hang.
@pytest.mark.timeout(180)
async def test_an_exchange_reaches_paid_with_the_peoples_steps_in_the_browser(
    signed_in: SignedInPage, site: Site, make_api: MakeApi
) -> None:
    application_id = await start_exchange(site, stay_over=True)
    ids = (application_id,)
    for name in (await assigned_reviewers(site, application_id))[0]:
        await review_in_browser(await signed_in(name), site, application_id)
    await stage_is(site.api, OFFICER, application_id, "AGREEMENT")

    await agree(site, make_api, application_id)
    await stage_is(site.api, OFFICER, application_id, "REPORTING")  # the stay is over: the timers fired at once

    page = await signed_in("applicant")
    await report_with_evidence(page, site, application_id)

    await validate_and_pay(site, application_id)

    desk = await signed_in("officer")
    await desk.goto(site.url(f"/officer/exchanges/{application_id}"))
    await expect(desk.locator(".stage").first).to_have_text("PAID")
    await expect_on_timeline(desk, "PAID")
    await expect(desk.locator("ol.timeline")).to_contain_text(
        officer_of(site.partnership)
    )  # the validation, under the officer's name
    await assert_accessible(desk, page_label(desk.url, ids) + " (PAID)")
    await page.goto(site.url("/mine"))
    row = page.get_by_role("row").filter(has_text=application_id)
    await expect(row.locator(".stage")).to_have_text("PAID")


async def report_with_evidence(page: Page, site: Site, application_id: str) -> None:
    """The applicant finds what is missing on their list, uploads a boarding pass (a real PDF) and reports."""
    label = page_label(site.url(f"/exchanges/{application_id}"), (application_id,))
    await page.goto(site.url("/mine"))
    row = page.get_by_role("row").filter(has_text=application_id)
    await expect(row).to_contain_text("The closing report")
    await assert_accessible(page)
    await row.get_by_role("link", name=application_id, exact=True).click()
    await page.wait_for_url(site.url(f"/exchanges/{application_id}"))
    await assert_accessible(page, f"{label} (applicant, REPORTING)")
    upload = page.locator(f"form[action$='/exchanges/{application_id}/evidence']")
    boarding_pass: FilePayload = {"name": "boarding-pass.pdf", "mimeType": "application/pdf", "buffer": b""}
    boarding_pass["buffer"] = pdf(application_id)  # a real PDF (tests/reporting/documents.py), unique per exchange
    await upload.get_by_label("Document").set_input_files(files=boarding_pass)
    await upload.get_by_label("What it proves").select_option("boarding_pass")
    await upload.get_by_role("button", name="Upload").click()
    await expect(page.get_by_role("status")).to_contain_text("boarding-pass.pdf was uploaded as a boarding pass")
    await assert_accessible(page, f"{label} (applicant, evidence uploaded)")
    report = page.locator(f"form[action$='/exchanges/{application_id}/report']")
    await expect(report.get_by_role("checkbox", name="boarding-pass.pdf")).to_be_checked()
    await report.get_by_label("Summary of the stay").fill("Goals met; the agenda was followed day by day.")
    await report.get_by_role("button", name="Submit the report").click()
    await expect(page.get_by_role("status")).to_contain_text("Your report was submitted")
    status = await stage_is(site.api, APPLICANT, application_id, "REPORTING")
    assert status["report_submitted"] is True, status
