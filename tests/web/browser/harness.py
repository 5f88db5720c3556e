"""The browser tests' harness: Debian's Chromium (installed when missing), the app served over a real socket,
sign-in per role, and axe-core run inside the page.

- `ensure_chromium()`: /usr/bin/chromium, or Debian's `chromium` package installed with apt-get (as root,
  non-interactive, `apt-get update` first when the package lists are missing). Never a browser download.
- `serving(app)`: uvicorn on a free 127.0.0.1 port in the running event loop, stopped on exit.
- `sign_in(page, base_url, token)`: the sign-in form, as a person fills it.
- `assert_accessible(page, label)`: axe-core (tests/web/vendor/axe-core) injected into the page; fails on any
  serious or critical violation naming the rule, the elements and the help; every result is recorded in
  `AXE_RESULTS` for the run's summary (tests/web/browser/conftest.py prints it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Locator, Page
from starlette.types import ASGIApp

from clients.api import Principal
from tests.api.helpers import APPLICANT, OFFICER, OPS, reviewer_token
from tests.workflows.conftest import REVIEWERS

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the machine's network is closed, so nothing runs in the background
# that would call out (updates, safe browsing, field trials); /dev/shm may be small in a container.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--disable-sync",
    "--no-first-run",
]
APT_TIMEOUT_S = 900
AXE_JS = Path(__file__).parent.parent / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING_IMPACTS = ("serious", "critical")
IMPACTS = ("critical", "serious", "moderate", "minor")


class ChromiumUnavailable(Exception):
    """Chromium is not at CHROMIUM and could not be installed from Debian's packages; the message says why."""


def ensure_chromium() -> Path:
    """Debian's Chromium: the installed one, or `apt-get install -y chromium` (root only) when it is missing."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and these tests are not running as root, so they cannot install it. "
            "Install Debian's package once: sudo apt-get install -y chromium"
        )
    if shutil.which("apt-get") is None:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium")
    install = _apt("install", "-y", "--no-install-recommends", "chromium", "fonts-liberation")
    if install.returncode != 0:  # a fresh machine often has no package lists yet
        update = _apt("update")
        if update.returncode != 0:
            raise ChromiumUnavailable(f"apt-get update failed ({update.returncode}):\n{_tail(update)}")
        install = _apt("install", "-y", "--no-install-recommends", "chromium", "fonts-liberation")
    if install.returncode != 0:
        raise ChromiumUnavailable(f"apt-get install -y chromium failed ({install.returncode}):\n{_tail(install)}")
    if not os.access(CHROMIUM, os.X_OK):
        raise ChromiumUnavailable(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-q", "-o", "Dpkg::Options::=--force-confold", *args]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise ChromiumUnavailable(f"{' '.join(command)} did not finish within {APT_TIMEOUT_S} s") from error


def _tail(done: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    return "\n".join((done.stdout + done.stderr).strip().splitlines()[-lines:])


# Serving the app ---------------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn that leaves the test process's signal handlers alone (pytest-timeout and Ctrl-C keep theirs)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on a free 127.0.0.1 port in this event loop; yields its base URL, stops it on exit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"uvicorn:{port}")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise AssertionError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task
        listener.close()


# The stack and the people ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """The app on a real socket, its partnership (seeded: panel and budget) and an in-process API client for
    the steps no page takes (what another service or finance would send)."""

    base_url: str
    partnership: str
    api: httpx.AsyncClient
    tokens: dict[str, Principal]

    def url(self, path: str) -> str:
        return f"{self.base_url}/app{path}"


# `await signed_in("officer")`: a new browser context signed in as that role (tests/web/browser/conftest.py).
SignedInPage = Callable[[str], Awaitable[Page]]

# The token of each role in the test token table (tests/api/helpers.py token_table); reviewers by name.
ROLE_TOKENS = {
    "officer": OFFICER,
    "ops": OPS,
    "applicant": APPLICANT,
    **{name: reviewer_token(name) for name in REVIEWERS},
}
# Where each role lands after signing in (clients/web/context.py home_path: the first item of its menu).
START_PAGES = {
    "officer": "/officer",
    "ops": "/officer",
    "applicant": "/mine",
    "rev-a": "/inbox",
}
START_HEADINGS = {
    "/officer": "Exchanges by stage and partnership",
    "/mine": "Your exchanges",
    "/inbox": "Your review inbox",
}


async def sign_in(page: Page, base_url: str, token: str) -> None:
    """Fill the sign-in form with `token` and submit it; the browser lands on the role's start page."""
    await page.goto(f"{base_url}/app/signin")
    await page.get_by_label("Access token").fill(token)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
    assert "/app/signin" not in page.url, f"sign-in did not leave the sign-in page: {await _alert_text(page)}"


async def _alert_text(page: Page) -> str:
    alerts = page.get_by_role("alert")
    return " / ".join(await alerts.all_inner_texts()) or "(no message)"


# axe-core ----------------------------------------------------------------------------------------------------


@dataclass
class AxeResults:
    """Every page checked in this run: its label, and its violations counted by impact (one line each)."""

    pages: dict[str, Counter[str]] = field(default_factory=dict)
    checks: Counter[str] = field(default_factory=Counter)

    def record(self, label: str, violations: list[dict[str, Any]]) -> None:
        counts = self.pages.setdefault(label, Counter())
        for violation in violations:
            counts[str(violation.get("impact") or "minor")] += 1
        self.checks[label] += 1

    def lines(self) -> list[str]:
        lines = [f"{'page':<56} {'checks':>6} " + " ".join(f"{impact:>8}" for impact in IMPACTS)]
        for label in sorted(self.pages):
            counts = self.pages[label]
            cells = " ".join(f"{counts[impact]:>8}" for impact in IMPACTS)
            lines.append(f"{label:<56} {self.checks[label]:>6} {cells}")
        return lines


AXE_RESULTS = AxeResults()


def page_label(url: str, ids: tuple[str, ...] = ()) -> str:
    """The page's path with the given ids (exchanges, partnerships) written as {id}: one label per kind of page."""
    path = re.sub(r"^https?://[^/]+", "", url).split("?")[0].split("#")[0]
    for known in ids:
        path = path.replace(known, "{id}")
    return path


async def assert_accessible(page: Page, label: str | None = None, *, record: bool = True) -> None:
    """Run axe-core on the page as it is now; fail on any serious or critical violation, naming each.
    `label` names the page in the summary (default: its path); `record=False` keeps a check out of it."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Through the driver, not a <script> tag: the app's CSP rightly refuses inline scripts.
        await page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result: dict[str, Any] = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", AXE_TAGS
    )
    violations: list[dict[str, Any]] = result["violations"]
    name = label or page_label(page.url)
    if record:
        AXE_RESULTS.record(name, violations)
    blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core on {name}: {len(blocking)} serious or critical violations\n" + "\n".join(
        _describe(v) for v in blocking
    )


def _describe(violation: dict[str, Any]) -> str:
    targets = [", ".join(map(str, node.get("target", []))) for node in violation.get("nodes", [])]
    summary = (violation.get("nodes") or [{}])[0].get("failureSummary", "")
    return (
        f"- {violation['id']} ({violation.get('impact')}): {violation.get('help')} [{violation.get('helpUrl')}]\n"
        f"  on: {'; '.join(targets[:8])}{' ...' if len(targets) > 8 else ''}\n"
        f"  {' '.join(str(summary).split())}"
    )


async def focus_ring(element: Locator) -> bool:
    """Whether the element, focused, draws a visible focus indicator (an outline or a box-shadow ring)."""
    style: dict[str, str] = await element.evaluate(
        """element => {
            const style = getComputedStyle(element);
            return {outline: style.outlineStyle, width: style.outlineWidth, shadow: style.boxShadow};
        }"""
    )
    outlined = style["outline"] not in ("none", "") and style["width"] not in ("0px", "")
    return outlined or style["shadow"] not in ("none", "")
