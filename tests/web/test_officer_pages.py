"""The officer pages over HTTP, in process (issue 14): the dashboard, budgets with the chart and the top-up form,
an exchange's timeline and the officers' actions, the import's per-row report; refusals shown on the page."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable

import asyncpg
import httpx

from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    OFFICER,
    OPS,
    SERVICE,
    auth,
    body,
    officer_of,
    reviewer_token,
    seed_over_http,
    stage_is,
    token_table,
)
from tests.api.test_oversight import csv_of
from tests.web.test_sessions import form_field, sign_in
from tests.workflows.conftest import REVIEWERS

WAIT_S = 30.0
POLL_S = 0.1


async def page_until(web: httpx.AsyncClient, path: str, check: Callable[[str], bool]) -> str:
    """GET the page (bounded, real time) until `check` holds on its HTML; fail naming the page."""
    html = ""
    for _ in range(int(WAIT_S / POLL_S)):
        answer = await web.get(path)
        assert answer.status_code == 200, answer.text
        html = answer.text
        if check(html):
            return html
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{path}: the awaited content never showed; last page:\n{html[:3000]}")


async def seeded(make_api: MakeApi, budget_cents: int = 200_000_00) -> tuple[httpx.AsyncClient, str]:
    """A partnership with its panel and budget, and an officer signed in to the web app."""
    partnership = f"p-web-{uuid.uuid4().hex[:8]}"
    web = make_api(token_table(partnership))
    await seed_over_http(web, partnership, budget_cents)
    signed = await sign_in(web, OFFICER)
    assert signed.status_code == 303, signed.text
    return web, partnership


async def in_review(web: httpx.AsyncClient, partnership: str) -> str:
    data = body(partnership)
    assert (await web.post("/exchanges", json=data, headers=auth(SERVICE))).status_code == 201
    await stage_is(web, OFFICER, data["application_id"], "REVIEW")
    return str(data["application_id"])


async def test_the_dashboard_counts_an_exchange_in_its_stage(make_api: MakeApi) -> None:
    """An exchange in REVIEW is counted in its partnership's REVIEW cell, linked to the filtered list."""
    web, partnership = await seeded(make_api)
    app_id = await in_review(web, partnership)
    cell = f'aria-label="1 of {partnership} in REVIEW"'
    html = await page_until(web, "/app/officer", lambda page: cell in page)
    assert f"/app/officer/exchanges?stage=REVIEW&amp;partnership={partnership}" in html
    listed = await web.get("/app/officer/exchanges", params={"stage": "REVIEW", "partnership": partnership})
    assert listed.status_code == 200
    assert app_id in listed.text


async def test_budgets_show_the_figures_and_the_chart_and_a_top_up_books_once(
    make_api: MakeApi, pg_pool: asyncpg.Pool
) -> None:
    """The budgets page shows allocated, held, paid and available in EUR with an SVG chart; a top-up through the
    form is booked once even when the form is sent twice; a malformed amount is refused on the form, nothing booked."""
    web, partnership = await seeded(make_api, budget_cents=123_456_78)
    page = await web.get("/app/officer/budgets")
    assert page.status_code == 200
    assert "123,456.78 EUR" in page.text
    assert re.search(r'<svg class="chart" role="img" aria-labelledby="chart-title chart-desc"', page.text)
    assert '<title id="chart-title">' in page.text
    for heading in ("Allocated", "Held", "Paid", "Available"):
        assert f'<th scope="col" class="num">{heading}</th>' in page.text

    form = {
        "csrf_token": form_field(page.text, "csrf_token"),
        "form_key": form_field(page.text, "form_key"),
        "partnership_id": partnership,
        "reference": "EISMEA-WEB-1",
    }
    malformed = await web.post("/app/officer/budgets/top-up", data={**form, "amount_eur": "1.000,50"})
    assert malformed.status_code == 422
    assert "amount_eur" in malformed.text
    assert 'value="1.000,50"' in malformed.text, "what was typed is kept"
    for _ in range(2):
        booked = await web.post("/app/officer/budgets/top-up", data={**form, "amount_eur": "2500.50"})
        assert booked.status_code == 303, booked.text
    key = f"{partnership}:top-up:EISMEA-WEB-1"
    count = await pg_pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = $1", key)
    assert count == 1, "the form sent twice booked once"
    after = await web.get("/app/officer/budgets")
    assert "125,957.28 EUR" in after.text  # 123,456.78 + 2,500.50
    assert "Top-up of" in after.text, "the flash says what was done"


async def test_an_override_and_a_cancel_through_the_forms_show_on_the_timeline(make_api: MakeApi) -> None:
    """An override in REVIEW moves the exchange on and the timeline names the officer and the justification; a
    reopen in REVIEW is refused on the page (4xx, nothing changed); a cancel ends the exchange."""
    web, partnership = await seeded(make_api)
    app_id = await in_review(web, partnership)
    path = f"/app/officer/exchanges/{app_id}"
    page = await web.get(path)
    assert page.status_code == 200
    csrf = form_field(page.text, "csrf_token")

    wrong = await web.post(
        f"{path}/reopen", data={"csrf_token": csrf, "justification": "the applicant's appeal was upheld"}
    )
    assert 400 <= wrong.status_code < 500, wrong.text
    assert 'role="alert"' in wrong.text
    assert "Nothing was changed." in wrong.text

    justification = "both reviewers were unavailable this month"
    done = await web.post(
        f"{path}/override", data={"csrf_token": csrf, "decision": "approve", "justification": justification}
    )
    assert done.status_code == 303, done.text
    html = await page_until(web, path, lambda text: justification in text)
    assert officer_of(partnership) in html
    assert "REVIEW" not in re.findall(r'<dt>Stage</dt><dd><span class="stage">(\w+)', html)

    cancelled = await web.post(f"{path}/cancel", data={"csrf_token": csrf, "reason": "the host closed the lab"})
    assert cancelled.status_code == 303, cancelled.text
    html = await page_until(web, path, lambda text: "the host closed the lab" in text)
    assert '<dt>Stage</dt><dd><span class="stage">CANCELLED' in html


async def test_a_csv_import_reports_the_bad_row_by_line_and_field_and_starts_the_good_one(make_api: MakeApi) -> None:
    """The import page posts the file to POST /imports and shows each row: line 3 refused naming visitor.country
    and its column, the good row started (its exchange exists)."""
    web, partnership = await seeded(make_api)
    good, bad = body(partnership), body(partnership)
    bad["visitor"]["country"] = "Poland"
    page = await web.get("/app/officer/import")
    data = {"csrf_token": form_field(page.text, "csrf_token"), "form_key": form_field(page.text, "form_key")}
    files = {"file": ("applications.csv", csv_of([good, bad]), "text/csv")}
    report = await web.post("/app/officer/import", data=data, files=files)
    assert report.status_code == 200, report.text
    assert "1 started" in report.text
    assert "1 refused" in report.text
    row = re.search(r'<td class="num">3</td>.*?</tr>', report.text, re.S)
    assert row, report.text
    assert "visitor.country" in row.group(0)
    assert "column visitor_country" in row.group(0)
    assert (await web.get(f"/exchanges/{good['application_id']}", headers=auth(OFFICER))).status_code == 200


async def test_the_officer_pages_refuse_reviewers_and_applicants_and_ops_only_read(make_api: MakeApi) -> None:
    """A reviewer or an applicant opening /app/officer gets the API's 403 as the page; ops read the budgets
    without the top-up form."""
    web, partnership = await seeded(make_api)
    for token in (reviewer_token(REVIEWERS[0]), APPLICANT):
        web.cookies.clear()
        assert (await sign_in(web, token)).status_code == 303
        refused = await web.get("/app/officer")
        assert refused.status_code == 403, refused.text
        assert 'role="alert"' in refused.text
    web.cookies.clear()
    assert (await sign_in(web, OPS)).status_code == 303
    budgets = await web.get("/app/officer/budgets")
    assert budgets.status_code == 200
    assert "Top up a budget" not in budgets.text
    assert partnership in budgets.text


async def test_a_post_without_the_csrf_token_is_refused_and_books_nothing(
    make_api: MakeApi, pg_pool: asyncpg.Pool
) -> None:
    """A forged top-up (no session CSRF token) is 403 and books nothing."""
    web, partnership = await seeded(make_api)
    forged = await web.post(
        "/app/officer/budgets/top-up",
        data={"partnership_id": partnership, "amount_eur": "100", "reference": "FORGED-1"},
    )
    assert forged.status_code == 403
    key = f"{partnership}:top-up:FORGED-1"
    assert await pg_pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = $1", key) == 0
