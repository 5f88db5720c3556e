"""Exports (issue 17, item 5): exchanges, ledger transfers and payment orders as they stood at an instant, as CSV and
XLSX that read back to the ledger's own figures (the small programme of tests/reports/conftest.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest

from clients.reports.inputs import InputRefused, parse_as_of
from clients.reports.tables import header, to_csv, to_xlsx
from ledger.exports import ExportKind, export_table
from ledger.store import LedgerStore
from tests.reports.conftest import GRANT_CENTS, Programme

pytestmark = pytest.mark.timeout(300)  # the first test may pay for the programme's drive


def _sheet(content: bytes, name: str) -> list[dict[str, object]]:
    workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    rows = list(workbook[name].iter_rows(values_only=True))
    names = [str(cell) for cell in rows[0]]
    return [dict(zip(names, row, strict=True)) for row in rows[1:]]


async def test_transfers_read_back_from_xlsx_and_csv_sum_to_the_ledgers_balances(programme: Programme) -> None:
    """Every transfer twice (its debit and its credit entry); the pay-outs' debit side sums to what the ledger
    says was paid, the open holds' to what it holds; EUR columns are the cents / 100; instants are date-times."""
    table = await export_table(programme.pool, ExportKind.TRANSFERS, datetime.now(UTC))
    (balance,) = await LedgerStore(programme.pool).partnership_balances()
    rows = _sheet(to_xlsx(table), "transfers")
    assert list(rows[0]) == header(table.columns, xlsx=True)
    debits = [r for r in rows if r["side"] == "debit"]
    assert len(rows) == 2 * len(debits)
    assert len({r["transfer_id"] for r in rows}) == len(debits)
    paid = sum(int(str(r["amount_cents"])) for r in debits if r["kind"] == "pay_out")
    assert paid == balance.paid_cents == 2 * GRANT_CENTS
    assert all(r["amount_eur"] == int(str(r["amount_cents"])) / 100 for r in rows)
    assert all(isinstance(r["created_at_utc"], datetime) for r in rows)
    allocated = [r for r in debits if r["kind"] == "allocate"]
    assert [(r["account"], r["amount_cents"]) for r in allocated] == [("programme", balance.allocated_cents)]
    text_rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert sum(int(r["amount_cents"]) for r in text_rows if r["side"] == "debit" and r["kind"] == "pay_out") == paid
    assert {r["amount_eur"] for r in text_rows if r["kind"] == "pay_out"} == {"950.00"}
    assert all(datetime.fromisoformat(r["created_at"]).utcoffset() == timedelta(0) for r in text_rows)


async def test_exchanges_as_of_the_end_show_each_stage_and_the_ledgers_cents(programme: Programme) -> None:
    """At the end: A and B PAID with 95,000 paid, C INELIGIBLE, D in AGREEMENT with 95,000 held; dates are dates
    in the XLSX and ISO dates in the CSV."""
    table = await export_table(programme.pool, ExportKind.EXCHANGES, programme.ended)
    rows = {r["application_id"]: r for r in _sheet(to_xlsx(table), "exchanges")}
    stages = {key: (rows[key]["stage"], rows[key]["held_cents"], rows[key]["paid_cents"]) for key in rows}
    assert stages == {
        programme.paid_on_time: ("PAID", 0, GRANT_CENTS),
        programme.paid_late: ("PAID", 0, GRANT_CENTS),
        programme.ineligible: ("INELIGIBLE", 0, 0),
        programme.held: ("AGREEMENT", GRANT_CENTS, 0),
    }
    assert rows[programme.paid_late]["visitor_type"] == "sme"
    start = rows[programme.paid_on_time]["start_date"]
    assert isinstance(start, datetime)
    assert start.time() == datetime.min.time()
    text = {r["application_id"]: r for r in csv.DictReader(io.StringIO(to_csv(table)))}
    held_start = rows[programme.held]["start_date"]
    assert isinstance(held_start, datetime)
    assert date.fromisoformat(text[programme.held]["start_date"]) == held_start.date()
    assert text[programme.held]["held_eur"] == "950.00"


async def test_as_of_leaves_out_what_came_later(programme: Programme) -> None:
    """Just after A's confirmation: D (started 12 days later) is absent and B still in PAYMENT; its payment order
    is listed without finance's confirmation. Before the budget was allocated there is no transfer at all."""
    moment = programme.a_confirmed[1]
    exchanges = {r[0]: r for r in (await export_table(programme.pool, ExportKind.EXCHANGES, moment)).rows}
    assert programme.held not in exchanges
    names = [c.name for c in (await export_table(programme.pool, ExportKind.EXCHANGES, moment)).columns]
    stage = names.index("stage")
    assert (exchanges[programme.paid_on_time][stage], exchanges[programme.paid_late][stage]) == ("PAID", "PAYMENT")
    orders = await export_table(programme.pool, ExportKind.PAYMENT_ORDERS, moment)
    by_exchange = {r[1]: dict(zip([c.name for c in orders.columns], r, strict=True)) for r in orders.rows}
    assert by_exchange[programme.paid_on_time]["payment_reference"] == f"SEPA-{programme.paid_on_time}"
    assert by_exchange[programme.paid_late]["confirmed_at"] is None
    assert by_exchange[programme.paid_late]["payment_reference"] is None
    now = await export_table(programme.pool, ExportKind.PAYMENT_ORDERS, programme.ended)
    assert all(dict(zip([c.name for c in now.columns], r, strict=True))["confirmed_by"] for r in now.rows)
    before = await export_table(programme.pool, ExportKind.TRANSFERS, programme.started[0] - timedelta(minutes=5))
    assert before.rows == []


def test_as_of_is_refused_naming_the_field_and_the_rule() -> None:
    """No offset, not a date, or in the future: refused naming as_of; a date means the end of that day (UTC)."""
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    for text, rule in (
        ("2026-03-01T12:00:00", "must carry its offset"),
        ("yesterday", "must be a date YYYY-MM-DD or an ISO 8601 instant"),
        ("2027-01-01", "must not be in the future"),
    ):
        with pytest.raises(InputRefused) as refused:
            parse_as_of(text, now)
        assert (refused.value.field, rule in refused.value.rule) == ("as_of", True), refused.value
    assert parse_as_of("2026-03-01", now) == datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of(None, now) == now
