"""The KPI report and the exports through the REST API and `cx` (issue 17, items 3 and 5): content types, files
named by Content-Disposition, who may call them, and bad input refused naming the field and the rule."""

from __future__ import annotations

import csv
import io
import stat
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import openpyxl
import pytest
import pytest_asyncio

from clients.api import create_app
from clients.client import ExchangeClient
from clients.exit_codes import ExitCode
from ledger.evidence_store import FileEvidenceStore
from ledger.kpis import programme_kpis
from tests.api.helpers import APPLICANT, OFFICER, OPS, PARTY_SERVICE, SERVICE, auth, reviewer_token, token_table
from tests.clients.test_cli import cx
from tests.reports.conftest import GRANT_CENTS, Programme
from tests.workflows.conftest import REVIEWERS
from tests.workflows.conftest import dev_client as dev_client  # fixture: the API needs an engine client

pytestmark = pytest.mark.timeout(300)  # the first test may pay for the programme's drive


@pytest_asyncio.fixture(loop_scope="session")
async def api(programme: Programme, dev_client: ExchangeClient, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the programme's database, with the standard token table."""
    app = create_app(
        dev_client, programme.pool, token_table(programme.partnership), evidence_store=FileEvidenceStore(tmp_path)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def _window(programme: Programme) -> dict[str, str]:
    start = programme.started[0].date() - timedelta(days=1)
    return {"from": start.isoformat(), "to": (programme.ended.date() + timedelta(days=1)).isoformat()}


async def test_the_kpis_over_http_are_the_reports_in_json_csv_and_html(
    api: httpx.AsyncClient, programme: Programme
) -> None:
    """JSON is programme_kpis' report; CSV and HTML come with their content types, the CSV as a named file."""
    window = _window(programme)
    answer = await api.get("/reports/kpis", params=window, headers=auth(OFFICER))
    assert answer.status_code == 200, answer.text
    expected = await programme_kpis(programme.pool, *(date.fromisoformat(window[k]) for k in ("from", "to")))
    assert answer.json()["total"] == expected.total.model_dump(mode="json")
    as_csv = await api.get("/reports/kpis", params=window | {"format": "csv"}, headers=auth(SERVICE))
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        as_csv.headers["content-disposition"] == f'attachment; filename="cx-kpis-{window["from"]}-{window["to"]}.csv"'
    )
    assert [r["partnership_id"] for r in csv.DictReader(io.StringIO(as_csv.text))][-1] == "TOTAL"
    page = await api.get("/reports/kpis", params=window | {"format": "html"}, headers=auth(OPS))
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.text.startswith("<!DOCTYPE html>")
    assert page.text.count("<svg") >= 3


async def test_exports_over_http_are_named_files_of_the_right_type(
    api: httpx.AsyncClient, programme: Programme
) -> None:
    """XLSX and CSV with their content types and a Content-Disposition naming kind and instant."""
    answer = await api.get(
        "/exports/payment-orders", params={"format": "xlsx", "as_of": "2026-03-01"}, headers=auth(OFFICER)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert answer.headers["content-disposition"] == 'attachment; filename="cx-payment-orders-20260301T235959Z.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True)["payment-orders"]
    assert [c for c in next(sheet.iter_rows(values_only=True))][:5] == [
        "payment_order_id",
        "application_id",
        "partnership_id",
        "amount_cents",
        "amount_eur",
    ]
    transfers = await api.get("/exports/transfers", headers=auth(SERVICE))
    assert transfers.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(transfers.text)))
    paid = sum(int(r["amount_cents"]) for r in rows if r["kind"] == "pay_out" and r["side"] == "debit")
    assert paid == 2 * GRANT_CENTS


@pytest.mark.parametrize(
    ("token", "kpis", "exports"),
    [
        (OFFICER, 200, 200),
        (SERVICE, 200, 200),
        (OPS, 200, 403),
        (PARTY_SERVICE, 403, 403),
        (APPLICANT, 403, 403),
        (reviewer_token(REVIEWERS[0]), 403, 403),
    ],
)
async def test_who_may_read_the_report_and_the_exports(
    api: httpx.AsyncClient, programme: Programme, token: str, kpis: int, exports: int
) -> None:
    """Officers and programme services both; ops the KPIs only; parties, applicants and reviewers neither."""
    assert (await api.get("/reports/kpis", params=_window(programme), headers=auth(token))).status_code == kpis
    assert (await api.get("/exports/exchanges", headers=auth(token))).status_code == exports
    assert (await api.get("/exports/exchanges")).status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "field", "rule"),
    [
        ("/reports/kpis", {"from": "2026-03-02", "to": "2026-03-01"}, "to", "must be on or after from (2026-03-02)"),
        ("/reports/kpis", {"from": "2026-02-30", "to": "2026-03-01"}, "from", ""),
        ("/reports/kpis", {"from": "2026-03-01", "to": "2026-03-01", "format": "pdf"}, "format", ""),
        ("/exports/ledger", {}, "kind", ""),
        ("/exports/exchanges", {"as_of": "2026-03-01T10:00:00"}, "as_of", "must carry its offset"),
        ("/exports/exchanges", {"as_of": "2999-01-01"}, "as_of", "must not be in the future"),
        ("/exports/exchanges", {"format": "ods"}, "format", ""),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(
    api: httpx.AsyncClient, path: str, params: dict[str, str], field: str, rule: str
) -> None:
    """Each refusal is the shared Problem naming the parameter (and, where ours, the rule)."""
    answer = await api.get(path, params=params, headers=auth(OFFICER))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert any(e["field"].endswith(field) and rule in e["message"] for e in errors), errors


def test_cx_report_and_export_write_their_files_and_refuse_bad_input(programme: Programme, tmp_path: Path) -> None:
    """`cx report kpis` and `cx export` over the programme's database; bad input exits 2 naming the option."""
    env = {"DATABASE_URL": programme.database_url}
    window = _window(programme)
    page = tmp_path / "kpis.html"
    made = cx(
        "report",
        "kpis",
        "--from",
        window["from"],
        "--to",
        window["to"],
        "--format",
        "html",
        "--output",
        str(page),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    assert page.read_text().count("<svg") >= 3
    table = cx("report", "kpis", "--from", window["from"], "--to", window["to"], env=env)
    assert table.returncode == 0, table.stderr
    assert "TOTAL" in table.stdout
    assert programme.partnership in table.stdout
    book = tmp_path / "exchanges.xlsx"
    exported = cx("export", "exchanges", "--format", "xlsx", "--output", str(book), env=env)
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(book.stat().st_mode) == 0o600, "row-level exports name people: the owner's only"
    # As of now: D started on the test server's clock 57 days ahead, so its rows are not there yet.
    assert len(list(openpyxl.load_workbook(book, read_only=True)["exchanges"].iter_rows())) == 1 + 3
    for args, named in (
        (["report", "kpis", "--from", "2026-03-02", "--to", "2026-03-01"], "--to"),
        (["report", "kpis", "--from", "March", "--to", "2026-03-01"], "--from"),
        (["report", "kpis", "--from", "2026-03-01", "--to", "2026-03-01", "--format", "pdf"], "--format"),
        (["export", "ledger"], "kind"),
        (["export", "exchanges", "--as-of", "2026-03-01T10:00:00"], "--as-of"),
        (["export", "exchanges", "--format", "xlsx"], "--output"),
    ):
        refused = cx(*args, env=env)
        assert (refused.returncode, named in refused.stderr) == (ExitCode.USAGE, True), (args, refused.stderr)
        assert "Traceback" not in refused.stderr
