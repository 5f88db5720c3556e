"""`make screenshots`: docs/screenshots/kpi-report.png, the KPI report's HTML page for a small programme driven
through the real engine (time-skipping server, real activities, a database of its own), shot in headless Debian
Chromium with the browser tests' flags (installed from Debian's packages if missing, never downloaded).

Three partnerships, eleven exchanges between eight countries: most paid on time, two paid 12 days after their
order (late), one ineligible, two approved and still held. Not collected by `make test` (the name does not start
with test_); `make screenshots` runs it by path. The page is opened from a string with every request refused and
counted: the shot also proves the page asks for nothing. CX_SCREENSHOTS_DIR writes the PNG elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Route, async_playwright
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.reports.kpi_pages import kpi_html
from ledger.kpis import programme_kpis
from ledger.store import LedgerStore
from schemas.exchange import ApplicationInput
from schemas.search import register_search_attributes
from schemas.stages import Stage
from tests.factories import application, full_week_ahead
from tests.payload_keys import TEST_DATA_CONVERTER
from tests.reports.conftest import confirm_payment_of, report_and_validate, to_agreement
from tests.web.browser.harness import LAUNCH_ARGS, ensure_chromium
from tests.workflows.conftest import add_review_panel, wait_for_stage
from workers.devstack import TEMPORAL_TEST_SERVER, free_port
from workers.main import build_worker

OUT = Path(os.environ.get("CX_SCREENSHOTS_DIR") or Path(__file__).parents[2] / "docs" / "screenshots")
WIDTH = 1280
BUDGET_CENTS = 1_500_000  # 15,000 EUR each: the budgets' bars show what is paid and held
CITIES: dict[str, tuple[float, float]] = {
    "PL": (50.0647, 19.9450),  # Krakow
    "FR": (45.7640, 4.8357),  # Lyon
    "CZ": (50.0755, 14.4378),  # Prague
    "DE": (48.1351, 11.5820),  # Munich
    "IT": (45.4642, 9.1900),  # Milan
    "PT": (38.7223, -9.1393),  # Lisbon
    "EE": (59.4370, 24.7536),  # Tallinn
    "SK": (48.1486, 17.1077),  # Bratislava
}
Outcome = Literal["paid", "late", "held", "ineligible"]
# (partnership, visitor country, visitor is an SME, host country, outcome)
PLAN: list[tuple[str, str, bool, str, Outcome]] = [
    ("photonics4i", "PL", False, "FR", "paid"),
    ("photonics4i", "CZ", True, "FR", "paid"),
    ("photonics4i", "PL", True, "DE", "late"),
    ("photonics4i", "SK", False, "IT", "held"),
    ("biginn", "PT", False, "DE", "paid"),
    ("biginn", "EE", True, "FR", "paid"),
    ("biginn", "PL", False, "PL", "ineligible"),
    ("biginn", "EE", False, "IT", "late"),
    ("greentech", "IT", True, "PT", "paid"),
    ("greentech", "CZ", False, "DE", "paid"),
    ("greentech", "SK", True, "FR", "held"),
]


def _organisation(prefix: str, country: str, sme: bool) -> dict[str, Any]:
    latitude, longitude = CITIES[country]
    kind = "sme" if sme else ("cluster_organisation" if prefix == "vo" else "scale_up_support")
    return {
        "organisation_id": f"{prefix}-{uuid.uuid4().hex[:8]}",
        "name": f"{country} {kind.replace('_', ' ')}",
        "type": kind,
        "country": country,
        "latitude": latitude,
        "longitude": longitude,
        "member_of_profiled_cluster": sme,
    }


def _application(partnership: str, visitor: str, sme: bool, host: str, weeks: int) -> ApplicationInput:
    start, end = full_week_ahead(weeks, host)
    return application(
        visitor_partnership_id=partnership,
        host_partnership_id=partnership,
        visitor=_organisation("vo", visitor, sme),
        host=_organisation("ho", host, False),
        start_date=start.isoformat(),
        end_date=end.isoformat(),
    )


@dataclass(frozen=True)
class Showcase:
    pool: asyncpg.Pool
    first: date
    last: date


async def _drive(pool: asyncpg.Pool, env: WorkflowEnvironment, client: ExchangeClient) -> tuple[date, date]:
    """PLAN through the engine: as tests/reports/conftest.py drives its four, with more of each kind."""
    for partnership in sorted({p for p, *_ in PLAN}):
        await LedgerStore(pool).allocate(
            idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=BUDGET_CENTS
        )
        await add_review_panel(pool, partnership)
    first = (await env.get_current_time()).date()
    # Stays 6+ weeks ahead (past the year's end holidays), over before the 62-day sleep ends; the held ones start
    # 14+ weeks ahead, still 10+ days after their start at day 74.
    now = [(_application(p, v, s, h, 6), o) for p, v, s, h, o in PLAN if o != "held"]
    later = [_application(p, v, s, h, 14) for p, v, s, h, o in PLAN if o == "held"]
    for app, _ in now:
        await client.start_exchange(app)
    await asyncio.gather(
        *(
            wait_for_stage(client, app.application_id, Stage.INELIGIBLE)
            if outcome == "ineligible"
            else to_agreement(client, app.application_id, sign=True)
            for app, outcome in now
        )
    )
    await env.sleep(timedelta(days=62))
    paying = [(app.application_id, outcome) for app, outcome in now if outcome != "ineligible"]
    await asyncio.gather(*(report_and_validate(client, pool, app_id) for app_id, _ in paying))
    for app_id, outcome in paying:
        if outcome == "paid":
            await confirm_payment_of(client, env, app_id)
    await env.sleep(timedelta(days=12))
    for app_id, outcome in paying:
        if outcome == "late":
            await confirm_payment_of(client, env, app_id)
    for app in later:
        await client.start_exchange(app)
    await asyncio.gather(*(to_agreement(client, app.application_id, sign=False) for app in later))
    return first - timedelta(days=1), (await env.get_current_time()).date() + timedelta(days=1)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def showcase(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[Showcase]:
    pool = await asyncpg.create_pool(await make_database(), min_size=1, max_size=10)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_DATA_CONVERTER, test_server_existing_path=str(TEMPORAL_TEST_SERVER), port=free_port()
    )
    try:
        await register_search_attributes(env.client, "default")
        task_queue = f"cx-kpi-shot-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, pool, task_queue):
            first, last = await _drive(pool, env, ExchangeClient(env.client, task_queue))
        yield Showcase(pool, first, last)
    finally:
        await env.shutdown()
        await pool.close()


@pytest.mark.timeout(300)
async def test_screenshot_of_the_kpi_report(showcase: Showcase) -> None:
    """The report of the whole programme, shot whole; the page makes no request at all."""
    report = await programme_kpis(showcase.pool, showcase.first, showcase.last)
    assert [p.partnership_id for p in report.partnerships] == ["biginn", "greentech", "photonics4i"]
    assert (report.total.applied, report.total.paid, report.total.late_payments) == (11, 8, 2)
    asked: list[str] = []

    async def refuse(route: Route) -> None:
        asked.append(route.request.url)
        await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(ensure_chromium()), headless=True, args=LAUNCH_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": 900})
            await page.route("**/*", refuse)
            await page.set_content(kpi_html(report), wait_until="load")
            OUT.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=OUT / "kpi-report.png", full_page=True, animations="disabled")
        finally:
            await browser.close()
    assert asked == [], f"the report asked for {asked}"
