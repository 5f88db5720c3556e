"""`cx top-up` as a subprocess: an unknown partnership or a malformed amount books nothing (issue 10, item 1)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.budgets import register_partnership
from clients.exit_codes import ExitCode
from tests.clients.test_cli import cx


async def _ledger_footprint(pool: asyncpg.Pool) -> tuple[int, int]:
    """How many transfers and entries the ledger holds: any booking changes both."""
    transfers: int = await pool.fetchval("SELECT count(*) FROM ledger_transfers")
    entries: int = await pool.fetchval("SELECT count(*) FROM ledger_entries")
    return transfers, entries


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().count("\n") == 0, stderr
    return stderr.strip()


async def test_an_unknown_partnership_is_refused_and_nothing_is_booked(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    """A partnership with no record and no budget is refused with exit 3, naming partnership_id and where to
    see the known ones; the ledger is unchanged (refused before Temporal is even looked up)."""
    before = await _ledger_footprint(pg_pool)
    unknown = f"no-such-{uuid.uuid4().hex[:8]}"
    result = cx("top-up", unknown, "25000", "--reference", "EISMEA-1", env={"DATABASE_URL": database_url})
    assert result.returncode == ExitCode.NOT_FOUND, result.stderr
    line = _one_line(result.stderr)
    assert f"partnership_id '{unknown}': no such partnership" in line
    assert "`cx budget`" in line
    assert "nothing was booked" in line
    assert await _ledger_footprint(pg_pool) == before


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        ("Infinity", "finite"),
        ("NaN", "finite"),
        ("1e400", "without an exponent"),
        ("-5", "must be positive"),
        ("0", "must be positive"),
        ("1.234", "at most two decimals"),
        ("1,100.00", "not a number of euros"),
        ("99000000", "at most 7,000,000.00 EUR"),
    ],
)
async def test_a_malformed_amount_is_refused_and_nothing_is_booked(
    database_url: str, pg_pool: asyncpg.Pool, amount: str, rule: str
) -> None:
    """Each malformed amount is one line naming amount_eur and the rule, exit 2 (USAGE), nothing booked.
    (`--` passes "-5" as the amount; without it, "-5" is an unknown option, also a one-line usage error.)"""
    before = await _ledger_footprint(pg_pool)
    result = cx("top-up", "--reference", "EISMEA-2", "biginn", "--", amount, env={"DATABASE_URL": database_url})
    assert result.returncode == ExitCode.USAGE, result.stderr
    line = _one_line(result.stderr)
    assert f"amount_eur '{amount}'" in line
    assert rule in line
    if amount.startswith("-"):
        as_option = cx("top-up", "biginn", amount, "--reference", "EISMEA-2", env={"DATABASE_URL": database_url})
        assert as_option.returncode == ExitCode.USAGE
        assert amount in _one_line(as_option.stderr)
    assert await _ledger_footprint(pg_pool) == before


async def test_a_known_partnership_is_topped_up_once_and_a_changed_amount_conflicts(
    dev_server_env: WorkflowEnvironment, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    """A registered partnership is topped up (EUR in the output); the same reference books once; the same
    reference with another amount is a conflict (exit 4) that books nothing; an empty reference is refused."""
    partnership = f"p-{uuid.uuid4().hex[:10]}"
    await register_partnership(pg_pool, partnership, "Top-up Test Partnership")
    env = {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "CX_TASK_QUEUE": f"cx-top-up-{uuid.uuid4().hex[:8]}",
    }
    first = cx("top-up", partnership, "1250.50", "--reference", "EISMEA-3", env=env)
    assert first.returncode == ExitCode.OK, first.stderr
    assert first.stdout.startswith("booked: transfer ")
    assert f"1,250.50 EUR to {partnership}" in first.stdout
    again = cx("top-up", partnership, "1250.50", "--reference", "EISMEA-3", env=env)
    assert again.returncode == ExitCode.OK, again.stderr
    assert again.stdout.startswith("already booked"), again.stderr

    before = await _ledger_footprint(pg_pool)
    changed = cx("top-up", partnership, "1300", "--reference", "EISMEA-3", env=env)
    assert changed.returncode == ExitCode.CONFLICT, changed.stderr
    assert "EISMEA-3" in _one_line(changed.stderr)
    blank = cx("top-up", partnership, "10", "--reference", "  ", env=env)
    assert blank.returncode == ExitCode.USAGE
    assert "--reference" in _one_line(blank.stderr)
    assert await _ledger_footprint(pg_pool) == before
    allocated = await pg_pool.fetchval(
        "SELECT sum(amount_cents) FROM ledger_transfers WHERE idempotency_key LIKE $1", f"{partnership}:top-up:%"
    )
    assert allocated == 125_050
