"""Balances as of past instants, rebuilt from the entries' running totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.errors import InvalidRequest
from ledger.store import LedgerStore
from schemas.ledger import PartnershipBalance
from tests.ledger.conftest import Ids

TICK = timedelta(microseconds=1)  # Postgres timestamps have microsecond resolution


async def _as_of(store: LedgerStore, partnership: str, instant: datetime) -> PartnershipBalance | None:
    return next((b for b in await store.partnership_balances(as_of=instant) if b.partnership_id == partnership), None)


def _amounts(balance: PartnershipBalance | None) -> tuple[int, int, int, int] | None:
    if balance is None:
        return None
    return balance.allocated_cents, balance.held_cents, balance.paid_cents, balance.available_cents


async def test_balances_as_of_each_instant_of_a_sequence(store: LedgerStore, ids: Ids) -> None:
    """Before, between and after allocate / hold / partial post / top-up / hold / void, each past balance is exact."""
    partnership = ids.partnership()
    steps = [
        await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=100_000),
        await store.hold(
            idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange("a"), amount_cents=30_000
        ),
    ]
    steps.append(await store.post(idempotency_key=ids.key(), hold_id=steps[1].id, amount_cents=20_000))
    steps.append(await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=50_000))
    steps.append(
        await store.hold(
            idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange("b"), amount_cents=40_000
        )
    )
    steps.append(await store.void(idempotency_key=ids.key(), hold_id=steps[4].id))
    expected_after = [  # (allocated, held, paid, available) right after each step
        (100_000, 0, 0, 100_000),
        (100_000, 30_000, 0, 70_000),
        (100_000, 0, 20_000, 80_000),  # the 10,000 not posted returned to the budget
        (150_000, 0, 20_000, 130_000),
        (150_000, 40_000, 20_000, 90_000),
        (150_000, 0, 20_000, 130_000),
    ]
    assert _amounts(await _as_of(store, partnership, steps[0].created_at - TICK)) is None
    for step, expected in zip(steps, expected_after, strict=True):
        assert _amounts(await _as_of(store, partnership, step.created_at)) == expected, step
    for before, expected in zip(steps[1:], expected_after[:-1], strict=True):
        assert _amounts(await _as_of(store, partnership, before.created_at - TICK)) == expected, before
    now = [b for b in await store.partnership_balances() if b.partnership_id == partnership]
    assert [_amounts(b) for b in now] == [expected_after[-1]]
    # Any offset names the same instant.
    paris = timezone(timedelta(hours=1))
    assert _amounts(await _as_of(store, partnership, steps[2].created_at.astimezone(paris))) == expected_after[2]


async def test_as_of_needs_an_aware_instant(store: LedgerStore) -> None:
    """A naive as_of is refused: it would name a different instant on every server."""
    with pytest.raises(InvalidRequest) as refused:
        await store.partnership_balances(as_of=datetime(2025, 3, 1, 12, 0))  # noqa: DTZ001 - the naive instant under test
    assert refused.value.field == "as_of"
    assert await store.partnership_balances(as_of=datetime(2000, 1, 1, tzinfo=UTC)) == []
