"""Sign-in in a real browser: each role lands on its start page, the account page says who is signed in, a page
without a session leads to the sign-in page and back, a forged form is refused, and the keyboard reaches the
skip link and the form with a visible focus. axe-core checks every page visited."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.web.browser.harness import (
    ROLE_TOKENS,
    START_HEADINGS,
    START_PAGES,
    SignedInPage,
    Site,
    assert_accessible,
    focus_ring,
)


@pytest.mark.parametrize("role", sorted(START_PAGES))
async def test_each_role_signs_in_and_sees_its_start_page(signed_in: SignedInPage, site: Site, role: str) -> None:
    page = await signed_in(role)
    assert page.url == site.url(START_PAGES[role]), f"{role} landed on {page.url}"
    await expect(page.get_by_role("heading", level=1)).to_have_text(START_HEADINGS[START_PAGES[role]])
    await expect(page.get_by_role("navigation", name="Main").locator("[aria-current=page]")).to_have_count(1)
    await assert_accessible(page)
    await page.goto(site.url("/account"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    await expect(page.locator("dl.facts")).to_contain_text(role if role != "rev-a" else "reviewer")
    await assert_accessible(page)


async def test_a_page_without_a_session_signs_in_and_returns_there(anonymous: Page, site: Site) -> None:
    page = anonymous
    await page.goto(site.url("/account"))
    assert page.url.startswith(site.url("/signin")), page.url
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    await assert_accessible(page)
    await page.get_by_label("Access token").fill("not-a-token-anyone-has")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not known")
    await assert_accessible(page, "/app/signin (unknown token)")
    await page.get_by_label("Access token").fill(ROLE_TOKENS["officer"])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(site.url("/account"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your account")


async def test_signing_out_ends_the_session(signed_in: SignedInPage, site: Site) -> None:
    page = await signed_in("ops")
    await page.goto(site.url("/account"))
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(site.url("/signin"))
    await page.goto(site.url("/account"))
    assert page.url.startswith(site.url("/signin")), "the old session still opened the account page"


async def test_a_forged_form_without_the_csrf_token_is_refused_and_changes_nothing(
    signed_in: SignedInPage, site: Site
) -> None:
    page = await signed_in("officer")
    await page.goto(site.url("/account"))
    # Another site's form would post without this session's token (the cookie is SameSite=Lax, so the browser
    # would not even send it cross-site; here the request comes from the app's own origin, the strictest case).
    forged = await page.evaluate(
        """async url => {
            const answer = await fetch(url, {method: 'POST', body: new URLSearchParams({csrf_token: 'forged'})});
            return {status: answer.status, text: await answer.text()};
        }""",
        site.url("/signout"),
    )
    assert forged["status"] == 403, forged
    assert "security token" in forged["text"]
    # And the hidden field changed in the page itself before a real click.
    await page.locator("form[action$='/signout'] input[name=csrf_token]").evaluate("field => field.value = 'other'")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Form refused")
    await assert_accessible(page, "/app/signout (403 form refused)")
    await page.goto(site.url("/account"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your account")  # still signed in


async def test_the_keyboard_reaches_the_skip_link_and_the_form_with_visible_focus(anonymous: Page, site: Site) -> None:
    page = anonymous
    await page.goto(site.url("/signin"))
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()  # shown when focused, not left off-screen
    assert await focus_ring(skip), "the focused skip link shows no outline"
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    field = page.get_by_label("Access token")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await field.evaluate("element => element === document.activeElement"):
            break
    await expect(field).to_be_focused()
    assert await focus_ring(field), "the focused token field shows no outline"
    await page.keyboard.type(ROLE_TOKENS["applicant"])
    await page.keyboard.press("Enter")  # submits the form: no mouse needed
    await page.wait_for_url(site.url(START_PAGES["applicant"]))
