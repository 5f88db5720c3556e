"""The reviewer's pages in a real browser: two assigned reviewers each find the exchange in their inbox and
review it through the form until the quorum approves it; the third reviewer, not assigned, is refused the
exchange page and does not find it in their inbox."""

from __future__ import annotations

from playwright.async_api import expect

from tests.api.helpers import OFFICER, stage_is
from tests.web.browser.flows import assigned_reviewers, review_in_browser, start_exchange
from tests.web.browser.harness import SignedInPage, Site, assert_accessible, page_label


async def test_two_reviewers_review_to_quorum_through_the_form(signed_in: SignedInPage, site: Site) -> None:
    application_id = await start_exchange(site)
    assigned, _ = await assigned_reviewers(site, application_id)
    for name in assigned:
        page = await signed_in(name)
        await review_in_browser(page, site, application_id)
    approved = await stage_is(site.api, OFFICER, application_id, "AGREEMENT")
    assert len(approved["review"]["submitted_by"]) == 2, approved["review"]
    # The last reviewer's page, read again, now shows the exchange past review, with no form to submit twice.
    await page.reload()
    await expect(page.get_by_role("button", name="Submit your review")).to_have_count(0)


async def test_a_reviewer_opening_another_reviewers_exchange_is_refused(signed_in: SignedInPage, site: Site) -> None:
    application_id = await start_exchange(site)
    _, outsider = await assigned_reviewers(site, application_id)
    page = await signed_in(outsider)
    await expect(page.get_by_role("link", name=application_id, exact=True)).to_have_count(0)  # not in the inbox
    answer = await page.goto(site.url(f"/exchanges/{application_id}"))
    assert answer is not None
    assert answer.status in (403, 404), f"a reviewer not assigned got {answer.status}"
    await expect(page.get_by_role("alert")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).not_to_contain_text(application_id)
    await expect(page.locator("form[action$='/review']")).to_have_count(0)
    await assert_accessible(page, page_label(page.url, (application_id,)) + f" (refused: {answer.status})")
    # A review posted straight at the form's address is refused too, and nothing is recorded.
    csrf = await page.locator("input[name=csrf_token]").first.input_value()
    posted = await page.evaluate(
        """async ([url, csrf]) => {
            const form = new URLSearchParams({csrf_token: csrf, recommendation: 'approve', comment: 'mine now'});
            const answer = await fetch(url, {method: 'POST', body: form});
            return answer.status;
        }""",
        [site.url(f"/exchanges/{application_id}/review"), csrf],
    )
    assert posted in (403, 404), f"a review by a reviewer not assigned was answered {posted}"
    status = await stage_is(site.api, OFFICER, application_id, "REVIEW")
    assert status["review"]["submitted_by"] == [], status["review"]
