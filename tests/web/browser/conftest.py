"""Fixtures of the browser tests: one headless Chromium per session, the app served on a real socket over the
session's stack (a dev-server worker, the test database), and a signed-in page per role in its own context.

Chromium is made sure of once, after collection and before any test starts (an apt-get install may take
minutes, which no test's time limit should pay); a failure there fails every browser test with its reason,
and skips none. At the end, the run's summary lists axe-core's results per page.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from _pytest.terminal import TerminalReporter
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from clients.api import create_app
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from tests.api.helpers import seed_over_http, token_table
from tests.web.browser.harness import (
    AXE_RESULTS,
    LAUNCH_ARGS,
    ROLE_TOKENS,
    ChromiumUnavailable,
    SignedInPage,
    Site,
    ensure_chromium,
    page_label,
    serving,
    sign_in,
)

CHROMIUM_KEY = pytest.StashKey[Path | ChromiumUnavailable]()
BROWSER_FIXTURE = "browser"
BUDGET_CENTS = 10_000_000  # 100,000 EUR: room for every exchange the browser tests start
NAVIGATION_TIMEOUT_MS = 20_000
ACTION_TIMEOUT_MS = 15_000


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install Chromium from Debian's packages, once, if a collected test drives the browser."""
    if not any(BROWSER_FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        return
    started = time.monotonic()
    try:
        found: Path | ChromiumUnavailable = ensure_chromium()
    except ChromiumUnavailable as error:
        found = error
    session.config.stash[CHROMIUM_KEY] = found
    took_s = time.monotonic() - started
    if took_s > 2:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"browser tests: installed Debian's chromium in {took_s:.0f} s")


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if AXE_RESULTS.pages:
        terminalreporter.section("axe-core results per page (violations by impact; serious/critical fail)")
        for line in AXE_RESULTS.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chromium(request: pytest.FixtureRequest) -> Path:
    found = request.config.stash.get(CHROMIUM_KEY, None)
    if found is None:  # collected by another route (a plugin, a rerun): make sure of it now
        try:
            found = ensure_chromium()
        except ChromiumUnavailable as error:
            found = error
    if isinstance(found, ChromiumUnavailable):
        pytest.fail(f"Debian's Chromium is needed for the browser tests and could not be installed: {found}")
    return found


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """One headless Chromium for the session (Debian's binary, driven by Playwright; no browser download)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def site(dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path) -> AsyncIterator[Site]:
    partnership = f"p-web-{uuid.uuid4().hex[:8]}"
    tokens = token_table(partnership)
    app = create_app(dev_client, pg_pool, tokens, evidence_store=FileEvidenceStore(evidence_dir))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        await seed_over_http(api, partnership, budget_cents=BUDGET_CENTS)
        async with serving(app) as base_url:
            yield Site(base_url=base_url, partnership=partnership, api=api, tokens=tokens)


@pytest_asyncio.fixture(loop_scope="session")
async def signed_in(browser: Browser, site: Site) -> AsyncIterator[SignedInPage]:
    """`await signed_in("officer")`: a page in a new context (its own cookies) signed in as that role (or a
    reviewer's name, rev-a/rev-b/rev-c). Every context's console is watched: a page the CSP refused to run or
    style (an inline script or style in a template) fails the test."""
    async with contextlib.AsyncExitStack() as stack:
        refused: list[str] = []

        async def open_as(role: str) -> Page:
            page = await new_page(browser, stack, refused)
            await sign_in(page, site.base_url, ROLE_TOKENS[role])
            return page

        yield open_as
    assert not refused, "the pages' own Content-Security-Policy refused something:\n" + "\n".join(refused)


async def new_page(browser: Browser, stack: contextlib.AsyncExitStack, refused: list[str]) -> Page:
    context: BrowserContext = await browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    stack.push_async_callback(context.close)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    context.set_default_timeout(ACTION_TIMEOUT_MS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            refused.append(f"{page_label(message.page.url if message.page else '?')}: {message.text}")

    context.on("console", on_console)
    return await context.new_page()


@pytest_asyncio.fixture(loop_scope="session")
async def anonymous(browser: Browser) -> AsyncIterator[Page]:
    """A page in a new context with no session."""
    async with contextlib.AsyncExitStack() as stack:
        refused: list[str] = []
        yield await new_page(browser, stack, refused)
    assert not refused, "the pages' own Content-Security-Policy refused something:\n" + "\n".join(refused)
