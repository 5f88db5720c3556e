"""The browser tests' own checks catch what they are there to catch: axe-core fails a page with an unlabelled
input, and the app's Content-Security-Policy, enforced by the real browser, refuses a script injected into a
page (what an XSS would try) while the page's own files load."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.web.browser.harness import Site, assert_accessible


async def test_axe_fails_a_page_with_a_serious_violation_naming_it(browser: Browser, site: Site) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(site.url("/signin"))
        await assert_accessible(page, record=False)
        await page.evaluate(
            """() => {
                const field = document.createElement('input');
                field.id = 'unlabelled';
                document.querySelector('main').append(field);
            }"""
        )
        with pytest.raises(AssertionError, match=r"(?s)- label \(critical\).*#unlabelled"):
            await assert_accessible(page, record=False)
    finally:
        await context.close()


async def test_the_csp_refuses_an_injected_script_in_a_real_browser(browser: Browser, site: Site) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(site.url("/signin"))
        assert await page.evaluate("() => document.styleSheets.length") >= 1, "the app's own stylesheet loads"
        async with page.expect_console_message(lambda m: "Content Security Policy" in m.text) as refused:
            await page.evaluate(
                """() => {
                    const script = document.createElement('script');
                    script.textContent = 'window.injected = true';
                    document.body.append(script);
                }"""
            )
        assert "script" in (await refused.value).text
        assert await page.evaluate("() => window.injected === undefined"), "the injected script ran"
    finally:
        await context.close()
