"""Nightly reconciliation (issue 17, item 4): a healthy programme reports nothing; each kind of agreement broken
on purpose in the test database is reported with its kind, written, alerted, and the ledger is left untouched."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.reconcile import Comparison, FindingKind
from schemas.stages import Stage
from tests.factories import application, project
from tests.reconcile.conftest import PROGRAMME_ADDRESS, World, ledger_fingerprint, run_reconcile


async def test_a_healthy_programme_has_no_differences(world: World) -> None:
    """One PAID exchange, one holding money in AGREEMENT, one in REVIEW: every agreement holds, nothing is
    written to the findings table and nobody is alerted."""
    before = await ledger_fingerprint(world.pool)
    result = await run_reconcile(world)
    assert result.findings == ()
    assert (result.differences, result.by_kind) == (0, {})
    assert result.compared[Comparison.WORKFLOWS] == 3
    assert await ledger_fingerprint(world.pool) == before


# Each case breaks one agreement in the test database and returns what must be reported and how to put it back.
Expected = set[tuple[FindingKind, str | None]]
Repair = Callable[[], Awaitable[None]]
Case = Callable[[World], Awaitable[tuple[Expected, Repair]]]


async def _column(world: World, table: str, column: str, app_id: str) -> Any:
    return await world.pool.fetchval(f"SELECT {column} FROM {table} WHERE application_id = $1", app_id)  # noqa: S608


async def update_column(world: World, table: str, column: str, app_id: str, value: object) -> Repair:
    """Set one column of one exchange's row; the repair puts the old value back."""
    old = await _column(world, table, column, app_id)
    sql = f"UPDATE {table} SET {column} = $2 WHERE application_id = $1"  # noqa: S608 - test's own constants
    await world.pool.execute(sql, app_id, value)

    async def repair() -> None:
        await world.pool.execute(sql, app_id, old)

    return repair


async def _delete_row(world: World, table: str, app_id: str) -> Repair:
    """Delete one exchange's row of `table`; the repair inserts it again, every column as it was."""
    saved = await world.pool.fetchval(f"SELECT to_jsonb(t)::text FROM {table} t WHERE application_id = $1", app_id)  # noqa: S608
    assert saved is not None, f"{table} has no row for {app_id}"
    await world.pool.execute(f"DELETE FROM {table} WHERE application_id = $1", app_id)  # noqa: S608

    async def repair() -> None:
        await world.pool.execute(
            f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, $1::jsonb)",  # noqa: S608
            saved,
        )

    return repair


async def _pay_out_id(world: World) -> int:
    transfer_id: int = await world.pool.fetchval(
        "SELECT payout_transfer_id FROM payment_orders WHERE application_id = $1", world.paid
    )
    return transfer_id


async def _behind_the_triggers(world: World, table: str, sql: str, *args: object) -> None:
    """A hand edit of the immutable ledger, the triggers back in place before anything looks (as an intruder would)."""
    trigger = f"{table}_immutable"
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        await conn.execute(sql, *args)
        await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


async def read_model_stage(world: World) -> tuple[Expected, Repair]:
    repair = await update_column(world, "exchanges", "stage", world.agreement, "TRAVEL")
    return {(FindingKind.WORKFLOW_STAGE, world.agreement)}, repair


async def read_model_grant(world: World) -> tuple[Expected, Repair]:
    grant = await _column(world, "exchanges", "grant_cents", world.agreement)
    repair = await update_column(world, "exchanges", "grant_cents", world.agreement, grant + 100)
    return {(FindingKind.WORKFLOW_GRANT, world.agreement)}, repair


async def read_model_held(world: World) -> tuple[Expected, Repair]:
    held = await _column(world, "exchanges", "held_cents", world.agreement)
    assert held > 0, "the AGREEMENT exchange holds its grant"
    repair = await update_column(world, "exchanges", "held_cents", world.agreement, held + 100)
    return {(FindingKind.LEDGER_HELD, world.agreement)}, repair


async def order_amount(world: World) -> tuple[Expected, Repair]:
    amount = await _column(world, "payment_orders", "amount_cents", world.paid)
    repair = await update_column(world, "payment_orders", "amount_cents", world.paid, amount - 100)
    return {(FindingKind.PAYMENT_ORDER_LEDGER, world.paid)}, repair


async def order_unconfirmed(world: World) -> tuple[Expected, Repair]:
    columns = ("payment_reference", "confirmed_at", "confirmed_by")
    old = await world.pool.fetchrow(
        "SELECT payment_reference, confirmed_at, confirmed_by FROM payment_orders WHERE application_id = $1",
        world.paid,
    )
    assert old is not None
    sql = (
        "UPDATE payment_orders SET payment_reference = $2, confirmed_at = $3, confirmed_by = $4"
        " WHERE application_id = $1"
    )
    await world.pool.execute(sql, world.paid, None, None, None)

    async def repair() -> None:
        await world.pool.execute(sql, world.paid, *(old[c] for c in columns))

    return {(FindingKind.PAYMENT_ORDER_STAGE, world.paid)}, repair


async def order_deleted(world: World) -> tuple[Expected, Repair]:
    repair = await _delete_row(world, "payment_orders", world.paid)
    return {(FindingKind.PAYMENT_ORDER_MISSING, world.paid)}, repair


async def transfer_amount(world: World) -> tuple[Expected, Repair]:
    transfer_id = await _pay_out_id(world)
    sql = "UPDATE ledger_transfers SET amount_cents = amount_cents + $2 WHERE id = $1"
    await _behind_the_triggers(world, "ledger_transfers", sql, transfer_id, -100)

    async def repair() -> None:
        await _behind_the_triggers(world, "ledger_transfers", sql, transfer_id, 100)

    expected: Expected = {
        (FindingKind.LEDGER_INVARIANT, None),  # entries no longer match the transfer
        (FindingKind.LEDGER_PAID, world.paid),
        (FindingKind.LEDGER_POSTED, world.paid),
        (FindingKind.PAYMENT_ORDER_LEDGER, world.paid),
    }
    return expected, repair


async def entry_deleted(world: World) -> tuple[Expected, Repair]:
    transfer_id = await _pay_out_id(world)
    where = "transfer_id = $1 AND account_id = (SELECT id FROM ledger_accounts WHERE code = 'payouts')"
    saved = await world.pool.fetchval(f"SELECT to_jsonb(e)::text FROM ledger_entries e WHERE {where}", transfer_id)  # noqa: S608
    assert saved is not None
    await _behind_the_triggers(world, "ledger_entries", f"DELETE FROM ledger_entries WHERE {where}", transfer_id)  # noqa: S608

    async def repair() -> None:
        await world.pool.execute(
            "INSERT INTO ledger_entries SELECT * FROM jsonb_populate_record(NULL::ledger_entries, $1::jsonb)", saved
        )

    return {(FindingKind.LEDGER_INVARIANT, None)}, repair


async def row_without_workflow(world: World) -> tuple[Expected, Repair]:
    ghost = application(visitor_partnership_id=world.partnership, host_partnership_id=world.partnership)
    await project(world.pool, ghost, Stage.REVIEW)

    async def repair() -> None:
        await world.pool.execute("DELETE FROM exchanges WHERE application_id = $1", ghost.application_id)

    return {(FindingKind.WORKFLOW_MISSING, ghost.application_id)}, repair


async def workflow_without_row(world: World) -> tuple[Expected, Repair]:
    repair = await _delete_row(world, "exchanges", world.agreement)
    # Its ledger account (the hold) is then explained by no row either.
    return {(FindingKind.READ_MODEL_MISSING, world.agreement), (FindingKind.LEDGER_ORPHAN, world.agreement)}, repair


CASES: list[Case] = [
    read_model_stage,
    read_model_grant,
    read_model_held,
    order_amount,
    order_unconfirmed,
    order_deleted,
    transfer_amount,
    entry_deleted,
    row_without_workflow,
    workflow_without_row,
]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
async def test_each_broken_agreement_is_reported_with_its_kind(world: World, case: Case) -> None:
    """The break is reported with exactly the kinds it breaks, for the exchange it concerns; each finding is a
    row of its run in reconciliation_findings; the programme address gets one notification; and the run,
    which found differences, wrote nothing to the ledger (its every row is the same, byte for byte)."""
    expected, repair = await case(world)
    try:
        before = await ledger_fingerprint(world.pool)
        result = await run_reconcile(world)
        after = await ledger_fingerprint(world.pool)
    finally:
        await repair()
    assert {(f.kind, f.application_id) for f in result.findings} == expected, result.findings
    assert result.differences == len(result.findings) == sum(result.by_kind.values())
    assert after == before
    rows = await world.pool.fetch(
        "SELECT kind, application_id FROM reconciliation_findings WHERE run_id = $1", result.run_id
    )
    assert {(FindingKind(r["kind"]), r["application_id"]) for r in rows} == expected
    assert len(rows) == result.differences
    alert = await world.pool.fetchrow("SELECT * FROM outbox WHERE dedup_key = $1", f"reconcile:{result.run_id}")
    assert alert is not None
    assert (alert["topic"], alert["channel"], alert["destination"]) == ("notification", "email", PROGRAMME_ADDRESS)
    payload = json.loads(alert["payload"])
    assert payload["differences"] == result.differences
    assert all(kind.value in payload["text"] for kind, _ in expected)


async def test_a_closed_exchange_past_the_namespace_retention_may_have_lost_its_workflow(world: World) -> None:
    """Temporal deletes closed workflows after the namespace's retention: a REJECTED row last written a year ago
    without its workflow is no difference, while one closed today without its workflow is `workflow_missing`."""
    long_ago = application(visitor_partnership_id=world.partnership, host_partnership_id=world.partnership)
    today = application(visitor_partnership_id=world.partnership, host_partnership_id=world.partnership)
    await project(world.pool, long_ago, Stage.REJECTED, at=datetime.now(UTC) - timedelta(days=365))
    await project(world.pool, today, Stage.REJECTED)
    try:
        result = await run_reconcile(world)
    finally:
        await world.pool.execute(
            "DELETE FROM exchanges WHERE application_id = ANY($1::text[])",
            [long_ago.application_id, today.application_id],
        )
    assert {(f.kind, f.application_id) for f in result.findings} == {
        (FindingKind.WORKFLOW_MISSING, today.application_id)
    }


async def test_the_repairs_leave_a_healthy_programme(world: World) -> None:
    """After every break was put back, a run finds nothing again (the cases could not leak into each other)."""
    result = await run_reconcile(world)
    assert result.findings == ()
