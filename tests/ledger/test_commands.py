"""The ledger's commands: `cx db migrate`, `cx ledger check`, `cx ledger history` and `cx budget`, run in
process against a real Postgres, including their one-line errors and exit codes.

Each command calls asyncio.run, so the tests invoke them on a worker thread (asyncio.to_thread), away
from the event loop that runs the tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import typer
from typer.testing import CliRunner, Result

import workers.cli  # noqa: F401  (cx's configuration for the commands this module mounts in its own app)
from clients.ledger_commands import budget, db_app, format_cents, ledger_app
from ledger.store import LedgerStore
from tests.ledger.conftest import Ids
from workers.devstack import create_database, drop_database

app = typer.Typer()  # mounted the way clients/cli.py mounts them
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.command("budget")(budget)


async def cx(args: list[str], database_url: str | None, state_dir: Path) -> Result:
    env = {"DATABASE_URL": database_url or "", "CX_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert "Traceback" not in result.output
    assert "Traceback" not in (result.stderr or "")
    return result


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest_asyncio.fixture
async def booked(database_url: str, ids: Ids) -> AsyncIterator[tuple[str, str, int]]:
    """A partnership with 5,000 EUR and one exchange holding 1,100 EUR: (partnership, exchange, hold id)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = LedgerStore(pool)
        partnership, exchange = ids.partnership(), ids.exchange()
        await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=5_000_00)
        hold = await store.hold(
            idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=1_100_00
        )
        yield partnership, exchange, hold.id
    finally:
        await pool.close()


async def test_migrate_applies_each_migration_once(pg_admin_dsn: str, tmp_path: Path) -> None:
    """On an empty database `cx db migrate` applies the ledger migration; run again, it has nothing to do."""
    dsn = await create_database(pg_admin_dsn)
    try:
        first = await cx(["db", "migrate"], dsn, tmp_path)
        assert first.exit_code == 0, first.output
        assert "0001_ledger" in first.stdout, first.output
        second = await cx(["db", "migrate"], dsn, tmp_path)
        assert second.exit_code == 0
        assert "up to date" in second.stdout
    finally:
        await drop_database(pg_admin_dsn, dsn)


async def test_check_passes_then_exits_1_on_a_breach(
    make_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """`cx ledger check` prints every check and exits 0; after a forged credit it names the breach and exits 1."""
    dsn = await make_database()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await LedgerStore(pool).allocate(idempotency_key="a", partnership_id="p1", amount_cents=100)
        clean = await cx(["ledger", "check"], dsn, tmp_path)
        assert clean.exit_code == 0, clean.output
        assert "checks passed" in clean.stdout, clean.output
        assert "holds_resolved_at_most_once" in clean.stdout
        assert "no_budget_below_zero" in clean.stdout
        await pool.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE code = 'budget:p1'")
        breached = await cx(["ledger", "check"], dsn, tmp_path)
        assert breached.exit_code == 1, breached.output
        assert "breach debits_equal_credits" in breached.stdout
        assert "budget:p1" in breached.stdout
        as_json = await cx(["ledger", "check", "--json"], dsn, tmp_path)
        report = json.loads(as_json.stdout)
        assert as_json.exit_code == 1
        assert report["ok"] is False
        assert {c["name"] for c in report["checks"] if not c["ok"]} == {"debits_equal_credits", "running_balances"}
    finally:
        await pool.close()


async def test_history_lists_the_exchange_transfers(
    database_url: str, booked: tuple[str, str, int], tmp_path: Path
) -> None:
    """`cx ledger history` lists an exchange's transfers as a table or JSON; an unknown exchange says so."""
    partnership, exchange, hold_id = booked
    table = await cx(["ledger", "history", exchange], database_url, tmp_path)
    assert table.exit_code == 0, table.output
    assert f"budget:{partnership} -> exchange:{exchange}" in table.stdout
    assert "1,100.00 EUR" in table.stdout
    as_json = await cx(["ledger", "history", exchange, "--json"], database_url, tmp_path)
    assert [(t["id"], t["kind"], t["amount_cents"]) for t in json.loads(as_json.stdout)] == [
        (hold_id, "hold", 1_100_00)
    ]
    unknown = await cx(["ledger", "history", "never-held"], database_url, tmp_path)
    assert unknown.exit_code == 0
    assert "no ledger transfers for exchange never-held" in unknown.stdout


async def test_budget_shows_each_partnership_now_and_as_of(
    database_url: str, booked: tuple[str, str, int], tmp_path: Path
) -> None:
    """`cx budget` shows allocated / held / paid / available, as JSON too, and as of a past instant."""
    partnership, _, _ = booked
    table = await cx(["budget"], database_url, tmp_path)
    assert table.exit_code == 0, table.output
    assert partnership in table.stdout, table.output
    assert "3,900.00 EUR" in table.stdout, table.output
    as_json = await cx(["budget", "--json"], database_url, tmp_path)
    document = json.loads(as_json.stdout)
    mine = [b for b in document["partnerships"] if b["partnership_id"] == partnership]
    assert document["as_of"] is None
    assert mine == [
        {
            "partnership_id": partnership,
            "allocated_cents": 5_000_00,
            "held_cents": 1_100_00,
            "paid_cents": 0,
            "available_cents": 3_900_00,
        }
    ]
    past = await cx(["budget", "--as-of", "2001-01-01T00:00:00Z", "--json"], database_url, tmp_path)
    assert json.loads(past.stdout) == {"as_of": "2001-01-01T00:00:00+00:00", "partnerships": []}


@pytest.mark.parametrize(
    ("as_of", "complaint"),
    [
        ("yesterday", "not an ISO 8601 instant"),
        ("2025-03-01T12:00:00", "add a UTC offset"),
        ("2025-13-01T00:00:00Z", "not an ISO 8601 instant"),
    ],
)
async def test_a_bad_as_of_is_one_line_and_exit_2(
    database_url: str, tmp_path: Path, as_of: str, complaint: str
) -> None:
    """A malformed or naive --as-of is refused with one line naming the option, exit code 2."""
    result = await cx(["budget", "--as-of", as_of], database_url, tmp_path)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--as-of" in line
    assert complaint in line


async def test_database_failures_are_one_line_and_exit_5(pg_admin_dsn: str, tmp_path: Path) -> None:
    """No configured database, an unreachable one, a missing one, an unmigrated one: one clear line, exit 5
    (UNAVAILABLE, clients/exit_codes.py)."""
    unset = await cx(["budget"], None, tmp_path)
    assert unset.exit_code == 5
    assert "DATABASE_URL is not set" in one_line_error(unset)

    unreachable = await cx(["ledger", "check"], "postgresql://cx:secret@127.0.0.1:1/cx", tmp_path)
    line = one_line_error(unreachable)
    assert unreachable.exit_code == 5
    assert "cannot reach the database" in line
    assert "secret" not in line
    assert ":***@" in line

    base = pg_admin_dsn.rsplit("/", 1)[0]
    missing = await cx(["budget"], f"{base}/cx_no_such_database", tmp_path)
    assert missing.exit_code == 5
    assert "does not exist" in one_line_error(missing)

    empty = await create_database(pg_admin_dsn)
    try:
        for args in (["budget"], ["ledger", "history", "e1"], ["ledger", "check"]):
            unmigrated = await cx(args, empty, tmp_path)
            assert unmigrated.exit_code == 5, args
            assert "run `cx db migrate`" in one_line_error(unmigrated), args
    finally:
        await drop_database(pg_admin_dsn, empty)


@pytest.mark.parametrize("args", [["db", "migrate"], ["ledger", "check"], ["ledger", "history"], ["budget"]])
async def test_every_command_documents_an_example(tmp_path: Path, args: list[str]) -> None:
    """Each command's --help shows what it does and an example invocation."""
    result = await cx([*args, "--help"], None, tmp_path)
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert "cx " in result.stdout


def test_money_is_formatted_with_integer_arithmetic() -> None:
    """Cents print as euros with thousands separators, exactly, negatives included."""
    assert format_cents(0) == "0.00 EUR"
    assert format_cents(110_000) == "1,100.00 EUR"
    assert format_cents(-5) == "-0.05 EUR"
    assert format_cents(123_456_789_012_345_678) == "1,234,567,890,123,456.78 EUR"
