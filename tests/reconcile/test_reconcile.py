"""Nightly reconciliation (issue 17, item 4): a healthy programme reports nothing; each kind of agreement broken
on purpose in the test database is reported with its kind, written, alerted, and the ledger is left untouched."""

from __future__ import annotations

from tests.reconcile.conftest import World, ledger_fingerprint, run_reconcile


async def test_a_healthy_programme_has_no_differences(world: World) -> None:
    """One PAID exchange, one holding money in AGREEMENT, one in REVIEW: every agreement holds, nothing is
    written to the findings table and nobody is alerted."""
    before = await ledger_fingerprint(world.pool)
    result = await run_reconcile(world)
    assert result.findings == ()
    assert (result.differences, result.by_kind) == (0, {})
    assert result.compared["workflows"] == 3
    assert await ledger_fingerprint(world.pool) == before
