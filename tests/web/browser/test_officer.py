"""The back office in a real browser: an officer overrides a review from the exchange's timeline page, tops up
a budget (a mistyped amount is refused with nothing booked), and reads every page of the menu; ops read the
same pages without the forms. axe-core checks each page."""

from __future__ import annotations

import uuid

from playwright.async_api import expect

from tests.api.helpers import OFFICER, stage_is
from tests.web.browser.flows import expect_on_timeline, start_exchange
from tests.web.browser.harness import SignedInPage, Site, assert_accessible, page_label

MENU = ("/officer", "/officer/budgets", "/officer/late", "/officer/payments", "/officer/import")


async def test_an_officer_overrides_the_review_from_the_timeline_page(signed_in: SignedInPage, site: Site) -> None:
    application_id = await start_exchange(site)
    page = await signed_in("officer")
    await page.goto(site.url(f"/officer/exchanges/{application_id}"))
    label = page_label(page.url, (application_id,))
    await expect(page.locator(".stage").first).to_have_text("REVIEW")
    await assert_accessible(page, f"{label} (REVIEW, with actions)")
    override = page.locator("form[action$='/override']")
    await override.get_by_label("Approve").check()
    justification = f"Both reviewers are away until the stay; approved on the file ({uuid.uuid4().hex[:6]})."
    await override.get_by_label("Justification").fill(justification)
    await override.get_by_role("button", name="Override").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Override recorded: {application_id} is now in")
    await stage_is(site.api, OFFICER, application_id, "AGREEMENT")
    await expect_on_timeline(page, justification)
    await assert_accessible(page, f"{label} (after an override)")


async def test_an_officer_tops_up_a_budget_and_a_forged_or_mistyped_one_books_nothing(
    signed_in: SignedInPage, site: Site
) -> None:
    page = await signed_in("officer")
    await page.goto(site.url("/officer/budgets"))
    await expect(page.locator("svg.chart")).to_be_visible()
    await assert_accessible(page)
    row = page.get_by_role("row").filter(has_text=site.partnership)
    before = await row.get_by_role("cell").first.inner_text()  # allocated
    # A top-up forged by another page (no CSRF token, or a made-up one) is refused and books nothing.
    for token in ("", "made-up-token"):
        forged = await page.evaluate(
            """async ([url, partnership, token]) => {
                const form = new URLSearchParams({partnership_id: partnership, amount_eur: '9999', reference: 'x'});
                if (token) form.set('csrf_token', token);
                return (await fetch(url, {method: 'POST', body: form})).status;
            }""",
            [site.url("/officer/budgets/top-up"), site.partnership, token],
        )
        assert forged == 403, f"a forged top-up was answered {forged}"
    await page.reload()
    await expect(row.get_by_role("cell").first).to_have_text(before)
    form = page.locator("form[action$='/officer/budgets/top-up']")
    await form.get_by_label("Partnership").select_option(site.partnership)
    await form.get_by_label("Amount in euros").fill("12,5")
    await form.get_by_label("Reference of the decision").fill(f"decision-{uuid.uuid4().hex[:8]}")
    await form.get_by_role("button", name="Top up").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was changed")
    await expect(form.get_by_label("Amount in euros")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, "/app/officer/budgets (amount refused)")
    await expect(row.get_by_role("cell").first).to_have_text(before)
    await form.get_by_label("Amount in euros").fill("2500.50")
    await form.get_by_role("button", name="Top up").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Top-up of {site.partnership}")
    await expect(page.get_by_role("status")).to_contain_text("booked")
    allocated_cents = int(before.replace(",", "").replace(".", "").removesuffix(" EUR"))
    after = allocated_cents + 250_050
    await expect(row.get_by_role("cell").first).to_have_text(f"{after // 100:,}.{after % 100:02d} EUR")


async def test_every_back_office_page_opens_for_officers_and_ops(signed_in: SignedInPage, site: Site) -> None:
    application_id = await start_exchange(site)
    for role in ("officer", "ops"):
        page = await signed_in(role)
        for path in MENU:
            answer = await page.goto(site.url(path))
            assert answer is not None
            assert answer.status == 200, f"{role} on {path}: {answer.status}"
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            await assert_accessible(page, f"{page_label(page.url)} ({role})")
        await page.goto(site.url(f"/officer/exchanges?partnership={site.partnership}"))
        await expect(page.get_by_role("link", name=application_id, exact=True)).to_be_visible()
        await assert_accessible(page, f"/app/officer/exchanges?partnership= ({role})")
        await page.goto(site.url(f"/officer/exchanges/{application_id}"))
        await expect(page.get_by_role("heading", level=1)).to_contain_text(application_id)
        forms = page.locator("form[action*='/officer/exchanges/']")
        if role == "officer":
            assert await forms.count() >= 1, "an officer is offered no action on an exchange in REVIEW"
        else:
            await expect(forms).to_have_count(0)  # ops read, officers act
        if role == "ops":
            await page.goto(site.url("/officer/budgets"))
            await expect(page.locator("form[action$='/top-up']")).to_have_count(0)
