"""The ledger operations one by one: bookings, typed refusals that write nothing, idempotent replays and
conflicts for every operation, re-holds all or nothing, calls inside a caller's transaction, and the
database refusing to change what was booked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from ledger.errors import (
    MAX_AMOUNT_CENTS,
    AmountExceedsHold,
    BudgetExhausted,
    HoldAlreadyResolved,
    HoldNotFound,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    LedgerError,
    PayoutExceedsPosted,
    UnknownAccount,
    from_postgres,
)
from ledger.store import LedgerStore
from schemas.ledger import Transfer, TransferKind
from tests.ledger.conftest import Ids, account_totals, balance, fingerprint

EUR = 100  # cents


async def funded(store: LedgerStore, ids: Ids, amount_cents: int = 10_000 * EUR) -> str:
    partnership = ids.partnership()
    await store.allocate(idempotency_key=ids.key("allocate"), partnership_id=partnership, amount_cents=amount_cents)
    return partnership


async def test_allocate_creates_the_budget_and_tops_it_up(store: LedgerStore, ids: Ids) -> None:
    """An allocation moves money from the programme to a budget it creates; a second one tops it up."""
    partnership = ids.partnership()
    first = await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=5_000 * EUR)
    assert (first.kind, first.debit_account, first.credit_account) == (
        TransferKind.ALLOCATE,
        "programme",
        f"budget:{partnership}",
    )
    assert first.amount_cents == 5_000 * EUR
    assert first.pending_id is None
    assert not first.replayed
    assert first.created_at.tzinfo is not None
    await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=2_500 * EUR)
    assert await balance(store, partnership) == (7_500 * EUR, 0, 0, 7_500 * EUR)


async def test_hold_post_partial_and_pay_out(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """A hold reserves budget; a partial post moves part of it and releases the rest; the payout follows."""
    partnership = await funded(store, ids, 3_000 * EUR)
    exchange = ids.exchange()
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=1_100 * EUR
    )
    assert (hold.kind, hold.debit_account, hold.credit_account) == (
        TransferKind.HOLD,
        f"budget:{partnership}",
        f"exchange:{exchange}",
    )
    assert await balance(store, partnership) == (3_000 * EUR, 1_100 * EUR, 0, 1_900 * EUR)
    assert await store.open_hold(exchange) == hold

    post = await store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=800 * EUR)
    assert (post.kind, post.pending_id, post.amount_cents) == (TransferKind.POST, hold.id, 800 * EUR)
    assert await balance(store, partnership) == (3_000 * EUR, 0, 800 * EUR, 2_200 * EUR)
    assert await store.open_hold(exchange) is None
    assert await account_totals(pg_pool, f"exchange:{exchange}") == (0, 0, 0, 800 * EUR)

    paid = await store.pay_out(idempotency_key=ids.key(), application_id=exchange, amount_cents=800 * EUR)
    assert (paid.kind, paid.debit_account, paid.credit_account) == (
        TransferKind.PAY_OUT,
        f"exchange:{exchange}",
        "payouts",
    )
    assert await account_totals(pg_pool, f"exchange:{exchange}") == (0, 800 * EUR, 0, 800 * EUR)
    assert [t.id for t in await store.exchange_history(exchange)] == [hold.id, post.id, paid.id]


async def test_post_without_amount_posts_the_whole_hold(store: LedgerStore, ids: Ids) -> None:
    """Posting with no amount posts all of the hold."""
    partnership = await funded(store, ids, 2_000 * EUR)
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange(), amount_cents=1_234 * EUR
    )
    post = await store.post(idempotency_key=ids.key(), hold_id=hold.id)
    assert post.amount_cents == 1_234 * EUR
    assert await balance(store, partnership) == (2_000 * EUR, 0, 1_234 * EUR, 766 * EUR)


async def test_void_releases_the_hold(store: LedgerStore, ids: Ids) -> None:
    """A void returns the whole hold to the budget and resolves it."""
    partnership = await funded(store, ids, 2_000 * EUR)
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange(), amount_cents=1_500 * EUR
    )
    void = await store.void(idempotency_key=ids.key(), hold_id=hold.id)
    assert (void.kind, void.pending_id, void.amount_cents) == (TransferKind.VOID, hold.id, 1_500 * EUR)
    assert await balance(store, partnership) == (2_000 * EUR, 0, 0, 2_000 * EUR)


async def test_rehold_replaces_the_hold_in_one_step(store: LedgerStore, ids: Ids) -> None:
    """A re-hold voids the old hold and places the new one; both show in the history; the new one posts."""
    partnership = await funded(store, ids, 2_000 * EUR)
    exchange = ids.exchange()
    old = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=1_000 * EUR
    )
    key = ids.key("rehold")
    new = await store.rehold(idempotency_key=key, hold_id=old.id, amount_cents=1_800 * EUR)
    assert (new.kind, new.amount_cents, new.pending_id) == (TransferKind.HOLD, 1_800 * EUR, None)
    assert await balance(store, partnership) == (2_000 * EUR, 1_800 * EUR, 0, 200 * EUR)
    history = await store.exchange_history(exchange)
    assert [(t.kind, t.pending_id, t.amount_cents, t.idempotency_key) for t in history[1:]] == [
        (TransferKind.VOID, old.id, 1_000 * EUR, key),
        (TransferKind.HOLD, None, 1_800 * EUR, key),
    ]
    assert await store.open_hold(exchange) == new
    with pytest.raises(HoldAlreadyResolved) as resolved:
        await store.post(idempotency_key=ids.key(), hold_id=old.id)
    assert (resolved.value.resolution_kind, resolved.value.resolution_id) == ("void", history[1].id)
    await store.post(idempotency_key=ids.key(), hold_id=new.id, amount_cents=1_700 * EUR)
    assert await balance(store, partnership) == (2_000 * EUR, 0, 1_700 * EUR, 300 * EUR)


async def test_rehold_that_the_budget_cannot_cover_changes_nothing(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool
) -> None:
    """A re-hold beyond the budget is refused with BudgetExhausted and the old hold stays pending, untouched."""
    partnership = await funded(store, ids, 2_000 * EUR)
    exchange = ids.exchange()
    old = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=1_500 * EUR
    )
    before = await fingerprint(pg_pool)
    with pytest.raises(BudgetExhausted) as refused:
        await store.rehold(idempotency_key=ids.key(), hold_id=old.id, amount_cents=2_000 * EUR + 1)
    # Available counts the release of the old hold: 500 free + 1,500 held = 2,000 EUR.
    assert (refused.value.partnership_id, refused.value.requested_cents, refused.value.available_cents) == (
        partnership,
        2_000 * EUR + 1,
        2_000 * EUR,
    )
    assert await fingerprint(pg_pool) == before
    assert await store.open_hold(exchange) == old
    exact = await store.rehold(idempotency_key=ids.key(), hold_id=old.id, amount_cents=2_000 * EUR)
    assert await balance(store, partnership) == (2_000 * EUR, 2_000 * EUR, 0, 0)
    assert await store.open_hold(exchange) == exact


# Refusals ---------------------------------------------------------------------------------------------


async def test_bad_amounts_are_refused_naming_the_field(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """Zero, negative, oversized and non-integer amounts raise InvalidAmount naming amount_cents; nothing is written."""
    partnership = await funded(store, ids)
    exchange = ids.exchange()
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=1
    )
    before = await fingerprint(pg_pool)
    calls: list[Callable[[Any], Awaitable[Transfer]]] = [
        lambda a: store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=a),
        lambda a: store.hold(
            idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=a
        ),
        lambda a: store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=a),
        lambda a: store.rehold(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=a),
        lambda a: store.pay_out(idempotency_key=ids.key(), application_id=exchange, amount_cents=a),
    ]
    for call in calls:
        for amount in (0, -1, -10_000, MAX_AMOUNT_CENTS + 1, True, 1.5, "100"):
            with pytest.raises(InvalidAmount) as refused:
                await call(amount)
            assert refused.value.field == "amount_cents"
            assert refused.value.code == "invalid_amount"
            assert "amount_cents" in str(refused.value)
    assert await fingerprint(pg_pool) == before


async def test_the_sql_functions_refuse_bad_amounts_themselves(ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """Called directly in SQL (bypassing the store), the functions refuse a zero amount with SQLSTATE CX002."""
    before = await fingerprint(pg_pool)
    with pytest.raises(asyncpg.PostgresError) as raised:
        await pg_pool.fetchrow(
            "SELECT * FROM ledger_hold($1, $2, $3, $4)", ids.key(), ids.partnership(), ids.exchange(), 0
        )
    assert raised.value.sqlstate == "CX002"
    error = from_postgres(raised.value.sqlstate, raised.value.detail)
    assert isinstance(error, InvalidAmount)
    assert error.field == "amount_cents"
    assert await fingerprint(pg_pool) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("idempotency_key", ""),
        ("idempotency_key", "k" * 201),
        ("idempotency_key", "a\nb"),
        ("partnership_id", ""),
        ("partnership_id", "has space"),
        ("application_id", "x" * 129),
        ("application_id", "tab\t"),
    ],
)
async def test_malformed_ids_are_refused_naming_the_field(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool, field: str, value: str
) -> None:
    """Empty, over-long or whitespace-laden ids and keys raise InvalidRequest naming the field; nothing is written."""
    args = {"idempotency_key": ids.key(), "partnership_id": ids.partnership(), "application_id": ids.exchange()}
    args[field] = value
    before = await fingerprint(pg_pool)
    with pytest.raises(InvalidRequest) as refused:
        await store.hold(
            idempotency_key=args["idempotency_key"],
            partnership_id=args["partnership_id"],
            application_id=args["application_id"],
            amount_cents=100,
        )
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}:")
    assert await fingerprint(pg_pool) == before


async def test_hold_on_an_unknown_budget_is_refused(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """A hold on a partnership that was never allocated to raises UnknownAccount; no exchange account appears."""
    before = await fingerprint(pg_pool)
    with pytest.raises(UnknownAccount) as refused:
        await store.hold(
            idempotency_key=ids.key(), partnership_id=ids.partnership(), application_id=ids.exchange(), amount_cents=100
        )
    assert refused.value.account == f"budget:{ids.partnership()}"
    assert await fingerprint(pg_pool) == before


async def test_hold_beyond_the_budget_is_refused(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """A hold the budget cannot cover raises BudgetExhausted with both amounts; nothing is written."""
    partnership = await funded(store, ids, 1_000 * EUR)
    await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange("a"), amount_cents=600 * EUR
    )
    before = await fingerprint(pg_pool)
    with pytest.raises(BudgetExhausted) as refused:
        await store.hold(
            idempotency_key=ids.key(),
            partnership_id=partnership,
            application_id=ids.exchange("b"),
            amount_cents=400 * EUR + 1,
        )
    assert (refused.value.partnership_id, refused.value.requested_cents, refused.value.available_cents) == (
        partnership,
        400 * EUR + 1,
        400 * EUR,
    )
    assert refused.value.code == "budget_exhausted"
    assert await fingerprint(pg_pool) == before
    assert await account_totals(pg_pool, f"exchange:{ids.exchange('b')}") is None


async def test_exchange_stays_with_its_partnership(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """A hold for an exchange funded from another partnership's budget is refused naming partnership_id."""
    first, second = ids.partnership("one"), ids.partnership("two")
    for partnership in (first, second):
        await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=1_000 * EUR)
    await store.hold(idempotency_key=ids.key(), partnership_id=first, application_id=ids.exchange(), amount_cents=100)
    before = await fingerprint(pg_pool)
    with pytest.raises(InvalidRequest) as refused:
        await store.hold(
            idempotency_key=ids.key(), partnership_id=second, application_id=ids.exchange(), amount_cents=100
        )
    assert refused.value.field == "partnership_id"
    assert f"budget:{first}" in refused.value.reason
    assert await fingerprint(pg_pool) == before


async def test_missing_holds_and_non_holds_are_refused(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """Posting, voiding or re-holding a missing id, or a transfer that is not a hold, raises HoldNotFound."""
    partnership = ids.partnership()
    allocation = await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=1_000)
    before = await fingerprint(pg_pool)
    missing = 2**62
    for hold_id, kind in ((missing, None), (allocation.id, "allocate")):
        attempts: list[Awaitable[Transfer]] = [
            store.post(idempotency_key=ids.key(), hold_id=hold_id),
            store.void(idempotency_key=ids.key(), hold_id=hold_id),
            store.rehold(idempotency_key=ids.key(), hold_id=hold_id, amount_cents=10),
        ]
        for attempt in attempts:
            with pytest.raises(HoldNotFound) as refused:
                await attempt
            assert (refused.value.hold_id, refused.value.actual_kind) == (hold_id, kind)
    with pytest.raises(InvalidRequest) as bad_id:
        await store.void(idempotency_key=ids.key(), hold_id=0)
    assert bad_id.value.field == "hold_id"
    assert await fingerprint(pg_pool) == before


async def test_post_above_the_hold_is_refused(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """Posting more than the hold raises AmountExceedsHold naming both amounts; the hold stays open."""
    partnership = await funded(store, ids)
    exchange = ids.exchange()
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=500 * EUR
    )
    before = await fingerprint(pg_pool)
    with pytest.raises(AmountExceedsHold) as refused:
        await store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=500 * EUR + 1)
    assert (refused.value.hold_id, refused.value.requested_cents, refused.value.hold_cents) == (
        hold.id,
        500 * EUR + 1,
        500 * EUR,
    )
    assert await fingerprint(pg_pool) == before
    assert await store.open_hold(exchange) == hold


async def test_a_hold_resolves_at_most_once(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """After a post, a second post, a void or a re-hold (with new keys) raise HoldAlreadyResolved naming the post."""
    partnership = await funded(store, ids)
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange(), amount_cents=300 * EUR
    )
    post = await store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=100 * EUR)
    before = await fingerprint(pg_pool)
    attempts: list[Awaitable[Transfer]] = [
        store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=100 * EUR),
        store.void(idempotency_key=ids.key(), hold_id=hold.id),
        store.rehold(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=100 * EUR),
    ]
    for attempt in attempts:
        with pytest.raises(HoldAlreadyResolved) as refused:
            await attempt
        assert (refused.value.hold_id, refused.value.resolution_kind, refused.value.resolution_id) == (
            hold.id,
            "post",
            post.id,
        )
        assert f"post #{post.id}" in str(refused.value)
    assert await fingerprint(pg_pool) == before


async def test_pay_out_is_limited_to_what_was_posted(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """A payout above what was posted to the exchange raises PayoutExceedsPosted; unknown exchanges UnknownAccount."""
    partnership = await funded(store, ids)
    exchange = ids.exchange()
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=900 * EUR
    )
    before = await fingerprint(pg_pool)
    with pytest.raises(PayoutExceedsPosted) as pending_only:
        await store.pay_out(idempotency_key=ids.key(), application_id=exchange, amount_cents=1)
    assert (pending_only.value.application_id, pending_only.value.available_cents) == (exchange, 0)
    await store.post(idempotency_key=ids.key(), hold_id=hold.id, amount_cents=700 * EUR)
    await store.pay_out(idempotency_key=ids.key(), application_id=exchange, amount_cents=400 * EUR)
    before = await fingerprint(pg_pool)
    with pytest.raises(PayoutExceedsPosted) as over:
        await store.pay_out(idempotency_key=ids.key(), application_id=exchange, amount_cents=300 * EUR + 1)
    assert (over.value.requested_cents, over.value.available_cents) == (300 * EUR + 1, 300 * EUR)
    with pytest.raises(UnknownAccount) as unknown:
        await store.pay_out(idempotency_key=ids.key(), application_id=ids.exchange("never"), amount_cents=1)
    assert unknown.value.account == f"exchange:{ids.exchange('never')}"
    assert await fingerprint(pg_pool) == before


# Idempotency ------------------------------------------------------------------------------------------


async def _prepared(store: LedgerStore, ids: Ids) -> dict[str, Any]:
    """A budget, an exchange with one posted hold, and an open hold, for the idempotency tests."""
    partnership = await funded(store, ids)
    exchange = ids.exchange()
    posted = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=500 * EUR
    )
    await store.post(idempotency_key=ids.key(), hold_id=posted.id)
    open_hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange("x"), amount_cents=100 * EUR
    )
    return {"partnership": partnership, "exchange": exchange, "hold": open_hold}


OPERATIONS: dict[str, Callable[[LedgerStore, dict[str, Any], str, int], Awaitable[Transfer]]] = {
    "allocate": lambda s, c, k, a: s.allocate(idempotency_key=k, partnership_id=c["partnership"], amount_cents=a),
    "hold": lambda s, c, k, a: s.hold(
        idempotency_key=k, partnership_id=c["partnership"], application_id=c["exchange"], amount_cents=a
    ),
    "post": lambda s, c, k, a: s.post(idempotency_key=k, hold_id=c["hold"].id, amount_cents=a),
    "void": lambda s, c, k, a: s.void(idempotency_key=k, hold_id=c["hold"].id if a == 1 else c["hold"].id - 1),
    "rehold": lambda s, c, k, a: s.rehold(idempotency_key=k, hold_id=c["hold"].id, amount_cents=a),
    "pay_out": lambda s, c, k, a: s.pay_out(idempotency_key=k, application_id=c["exchange"], amount_cents=a),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_same_key_same_request_replays_the_original(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool, operation: str
) -> None:
    """Repeating any operation with the same key and request returns the original transfer and books nothing."""
    context = await _prepared(store, ids)
    call = OPERATIONS[operation]
    key = ids.key(operation)
    original = await call(store, context, key, 1)
    assert not original.replayed
    after_first = await fingerprint(pg_pool)
    for _ in range(2):
        again = await call(store, context, key, 1)
        assert again.replayed
        assert again.model_dump(exclude={"replayed"}) == original.model_dump(exclude={"replayed"})
    assert await fingerprint(pg_pool) == after_first


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_same_key_different_request_is_a_conflict(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool, operation: str
) -> None:
    """Reusing a key for a different request (or another operation) raises IdempotencyConflict naming both."""
    context = await _prepared(store, ids)
    call = OPERATIONS[operation]
    key = ids.key(operation)
    original = await call(store, context, key, 1)
    before = await fingerprint(pg_pool)
    with pytest.raises(IdempotencyConflict) as conflict:
        await call(store, context, key, 2)
    assert conflict.value.idempotency_key == key
    assert f"#{original.id}" in conflict.value.existing
    assert conflict.value.code == "idempotency_conflict"
    other = "allocate" if operation != "allocate" else "pay_out"
    with pytest.raises(IdempotencyConflict):
        await OPERATIONS[other](store, context, key, 1)
    assert await fingerprint(pg_pool) == before


async def test_post_all_and_post_exactly_the_hold_are_the_same_request(store: LedgerStore, ids: Ids) -> None:
    """Posting "all" and posting the hold's exact amount under one key is a replay, not a conflict."""
    partnership = await funded(store, ids)
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=ids.exchange(), amount_cents=700
    )
    key = ids.key()
    first = await store.post(idempotency_key=key, hold_id=hold.id)
    second = await store.post(idempotency_key=key, hold_id=hold.id, amount_cents=700)
    assert second.replayed
    assert second.id == first.id


# A caller's transaction -------------------------------------------------------------------------------


async def test_calls_share_the_callers_transaction(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool) -> None:
    """Post and pay-out in one caller transaction commit together, or vanish together on rollback."""
    partnership = await funded(store, ids)
    exchange = ids.exchange()
    hold = await store.hold(
        idempotency_key=ids.key(), partnership_id=partnership, application_id=exchange, amount_cents=400 * EUR
    )
    before = await fingerprint(pg_pool)

    class Abort(Exception):
        pass

    async def post_pay_out_then_abort() -> None:
        async with pg_pool.acquire() as conn, conn.transaction():
            await store.post(idempotency_key=ids.key("post"), hold_id=hold.id, conn=conn)
            await store.pay_out(
                idempotency_key=ids.key("pay"), application_id=exchange, amount_cents=400 * EUR, conn=conn
            )
            raise Abort

    with pytest.raises(Abort):
        await post_pay_out_then_abort()
    assert await fingerprint(pg_pool) == before

    async with pg_pool.acquire() as conn, conn.transaction():
        post = await store.post(idempotency_key=ids.key("post"), hold_id=hold.id, conn=conn)
        paid = await store.pay_out(
            idempotency_key=ids.key("pay"), application_id=exchange, amount_cents=400 * EUR, conn=conn
        )
    assert [t.id for t in await store.exchange_history(exchange)] == [hold.id, post.id, paid.id]


async def test_a_refusal_leaves_the_callers_transaction_usable(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool
) -> None:
    """A refused call inside a caller's transaction undoes only itself; the transaction goes on and commits."""
    partnership = await funded(store, ids, 1_000 * EUR)
    async with pg_pool.acquire() as conn, conn.transaction():
        first = await store.hold(
            idempotency_key=ids.key(),
            partnership_id=partnership,
            application_id=ids.exchange("a"),
            amount_cents=800 * EUR,
            conn=conn,
        )
        with pytest.raises(BudgetExhausted):
            await store.hold(
                idempotency_key=ids.key(),
                partnership_id=partnership,
                application_id=ids.exchange("b"),
                amount_cents=800 * EUR,
                conn=conn,
            )
        second = await store.hold(
            idempotency_key=ids.key(),
            partnership_id=partnership,
            application_id=ids.exchange("c"),
            amount_cents=200 * EUR,
            conn=conn,
        )
        assert await conn.fetchval("SELECT 1") == 1
    assert await balance(store, partnership) == (1_000 * EUR, 1_000 * EUR, 0, 0)
    assert await store.open_hold(ids.exchange("a")) == first
    assert await store.open_hold(ids.exchange("b")) is None
    assert await store.open_hold(ids.exchange("c")) == second


async def test_a_plain_connection_outside_a_transaction_autocommits(
    store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool
) -> None:
    """With a connection that has no open transaction, each call is its own committed transaction."""
    partnership = ids.partnership()
    async with pg_pool.acquire() as conn:
        await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=100, conn=conn)
        assert not conn.is_in_transaction()
        balances = await store.partnership_balances(conn=conn)
    assert any(b.partnership_id == partnership and b.available_cents == 100 for b in balances)


# What was booked cannot change ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_transfers SET amount_cents = amount_cents + 1 WHERE id = $1",
        "DELETE FROM ledger_transfers WHERE id = $1",
        "UPDATE ledger_entries SET credits_posted = credits_posted + 1 WHERE transfer_id = $1",
        "DELETE FROM ledger_entries WHERE transfer_id = $1",
        "TRUNCATE ledger_transfers CASCADE",
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_accounts CASCADE",
        "DELETE FROM ledger_accounts WHERE id = (SELECT credit_account_id FROM ledger_transfers WHERE id = $1)",
        "UPDATE ledger_accounts SET code = code || 'x' WHERE id = (SELECT credit_account_id FROM ledger_transfers"
        " WHERE id = $1)",
    ],
)
async def test_booked_rows_are_immutable(store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool, statement: str) -> None:
    """The database refuses to update, delete or truncate transfers and entries, or to rename or drop accounts."""
    transfer = await store.allocate(idempotency_key=ids.key(), partnership_id=ids.partnership(), amount_cents=100)
    before = await fingerprint(pg_pool)
    args = (transfer.id,) if "$1" in statement else ()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pg_pool.execute(statement, *args)
    assert await fingerprint(pg_pool) == before


def test_every_error_has_a_stable_code_and_survives_pickling() -> None:
    """Each ledger error carries a snake_case code and rebuilds itself from its fields (e.g. across processes)."""
    import pickle

    errors: list[LedgerError] = [
        InvalidRequest("application_id", "must not be empty"),
        InvalidAmount("amount_cents", -5),
        UnknownAccount("budget:p1"),
        BudgetExhausted("p1", 110_000, 5),
        HoldNotFound(7),
        HoldNotFound(7, "allocate"),
        HoldAlreadyResolved(7, "void", 9),
        AmountExceedsHold(7, 11, 10),
        PayoutExceedsPosted("e1", 11, 10),
        IdempotencyConflict("e1:hold:1", "hold #7 of 10 cents budget:p1 -> exchange:e1", "hold 11 cents ..."),
    ]
    for error in errors:
        assert error.code.isidentifier()
        assert error.code == error.code.lower()
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own error, pickled just above
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.fields == error.fields
