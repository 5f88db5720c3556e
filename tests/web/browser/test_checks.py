"""The browser tests' own checks catch what they are there to catch: axe-core fails a page with an unlabelled
input; the app's Content-Security-Policy, enforced by the real browser, refuses a script injected into a page
(what an XSS would try) while the page's own files load; and a missing Chromium is installed from Debian's
packages, or every browser test fails saying why."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.web.browser import harness
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


def test_chromium_is_installed_from_debian_when_missing_and_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No browser download: apt-get install, `apt-get update` first when the lists are missing, and a failure
    names the command and its output (what every browser test then fails with)."""
    missing = tmp_path / "chromium"
    monkeypatch.setattr(harness, "CHROMIUM", missing)
    calls: list[tuple[str, ...]] = []

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        if args == ("update",):
            return subprocess.CompletedProcess(args, 0, "", "")
        if args[0] == "install" and ("update",) in calls:
            missing.write_text("#!/bin/sh\n")
            missing.chmod(0o755)
            return subprocess.CompletedProcess(args, 0, "", "")
        return subprocess.CompletedProcess(args, 100, "", "E: Unable to locate package chromium")

    monkeypatch.setattr(harness, "_apt", apt)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert harness.ensure_chromium() == missing
    assert [call[0] for call in calls] == ["install", "update", "install"]
    assert "chromium" in calls[0]

    missing.unlink()
    calls.clear()
    monkeypatch.setattr(
        harness, "_apt", lambda *args: subprocess.CompletedProcess(args, 0 if args == ("update",) else 100, "", "E: no")
    )
    with pytest.raises(harness.ChromiumUnavailable, match=r"(?s)install -y chromium failed \(100\).*E: no"):
        harness.ensure_chromium()
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(harness.ChromiumUnavailable, match="not running as root"):
        harness.ensure_chromium()
