"""Steps the browser tests share: exchanges started through the API (as the back office would), and a
reviewer's review through the inbox and the review form, as a person does it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from playwright.async_api import Page, expect

from tests.api.helpers import APPLICANT_SUBJECT, OFFICER, auth, body, open_reviewers, stay_that_ended_weeks_ago
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


def ids_in(text: str) -> list[str]:
    return re.findall(r"app-[0-9a-f]{10}", text)
