"""`make screenshots`: PNGs of the web app's main pages in docs/screenshots/, taken in the same headless Chromium
over the same real stack as the browser tests (this directory's fixtures), with a few exchanges in different
stages so the pages have something to show.

Not collected by `make test` (the name does not start with test_); `make screenshots` runs it by path:
`pytest tests/web/browser/screenshots.py`. CX_SCREENSHOTS_DIR writes the PNGs elsewhere. Every page shot is also
checked by axe-core, like the tests' pages.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import FloatRect, Page, expect

from tests.api.conftest import MakeApi
from tests.api.helpers import OFFICER, cancel, reviewed, stage_is
from tests.web.browser.flows import (
    agree,
    assigned_reviewers,
    expect_on_timeline,
    report_over_api,
    start_exchange,
    validate_and_pay,
)
from tests.web.browser.harness import SignedInPage, Site, assert_accessible, page_label

OUT = Path(os.environ.get("CX_SCREENSHOTS_DIR") or Path(__file__).parents[3] / "docs" / "screenshots")
WIDTH, MAX_HEIGHT = 1280, 1800  # the whole page, cut at 1800 px (a PAID exchange's timeline runs to 4000)


async def shoot(page: Page, name: str, ids: tuple[str, ...] = ()) -> None:
    await assert_accessible(page, page_label(page.url, ids) + " (screenshot)")
    height = min(MAX_HEIGHT, await page.evaluate("() => document.documentElement.scrollHeight"))
    clip: FloatRect = {"x": 0, "y": 0, "width": WIDTH, "height": height}
    await page.screenshot(path=OUT / f"{name}.png", full_page=True, clip=clip, animations="disabled")


async def exchanges_in_each_stage(site: Site, make_api: MakeApi) -> dict[str, str]:
    """One exchange per stage worth showing, driven there through the API (in parallel): stage -> id."""

    async def to_agreement(stay_over: bool) -> str:
        application_id = await start_exchange(site, stay_over=stay_over)
        await reviewed(site.api, site.partnership, application_id)
        await stage_is(site.api, OFFICER, application_id, "AGREEMENT")
        return application_id

    async def to_reporting() -> str:
        application_id = await to_agreement(stay_over=True)
        await agree(site, make_api, application_id)
        await stage_is(site.api, OFFICER, application_id, "REPORTING")
        return application_id

    async def to_paid() -> str:
        application_id = await to_reporting()
        await report_over_api(site, application_id)
        await validate_and_pay(site, application_id)
        return application_id

    async def to_cancelled() -> str:
        application_id = await start_exchange(site)
        await cancel(site.api, site.partnership, application_id)
        await stage_is(site.api, OFFICER, application_id, "CANCELLED")
        return application_id

    review, _, agreement, reporting, paid, cancelled = await asyncio.gather(
        start_exchange(site), start_exchange(site), to_agreement(False), to_reporting(), to_paid(), to_cancelled()
    )
    return {
        "REVIEW": review,
        "AGREEMENT": agreement,
        "REPORTING": reporting,
        "PAID": paid,
        "CANCELLED": cancelled,
    }


# Six exchanges through their stages on the dev server, then eleven pages: about a minute on a quiet machine.
@pytest.mark.timeout(300)
async def test_screenshots_of_the_main_pages(signed_in: SignedInPage, site: Site, make_api: MakeApi) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    stages = await exchanges_in_each_stage(site, make_api)
    in_review, paid, reporting = stages["REVIEW"], stages["PAID"], stages["REPORTING"]

    reviewer = await signed_in((await assigned_reviewers(site, in_review))[0][0])
    await expect(reviewer.get_by_role("link", name=in_review, exact=True)).to_be_visible()
    await shoot(reviewer, "reviewer-inbox")
    await reviewer.goto(site.url(f"/exchanges/{in_review}"))
    await shoot(reviewer, "reviewer-review-form", (in_review,))

    officer = await signed_in("officer")
    await shoot(officer, "officer-dashboard")
    await officer.goto(site.url("/officer/budgets"))
    await shoot(officer, "officer-budgets")
    await officer.goto(site.url(f"/officer/exchanges/{paid}"))
    await expect_on_timeline(officer, "PAID")
    await shoot(officer, "officer-timeline", (paid,))
    await officer.goto(site.url(f"/officer/exchanges/{in_review}"))
    await shoot(officer, "officer-exchange-actions", (in_review,))
    await officer.goto(site.url("/officer/payments"))
    await shoot(officer, "officer-payments")

    applicant = await signed_in("applicant")
    await shoot(applicant, "applicant-exchanges")
    await applicant.goto(site.url(f"/exchanges/{reporting}"))
    await shoot(applicant, "applicant-report", (reporting,))

    await applicant.goto(site.url("/account"))
    await applicant.get_by_role("button", name="Sign out").click()
    await applicant.wait_for_url(site.url("/signin"))
    await shoot(applicant, "signin")
    shot = sorted(path.name for path in OUT.glob("*.png"))
    assert len(shot) >= 10, shot
