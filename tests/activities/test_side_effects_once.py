"""Every activity with a side effect, run twice with the same input, has its effect once (real Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from activities.payments import PaymentActivities
from activities.projection import ProjectionActivities
from ledger.store import LedgerStore
from schemas.activities import HoldFundsInput, PostPaymentInput, ProjectTransitionInput, VoidHoldInput
from schemas.ids import hold_key
from schemas.stages import Stage
from tests.factories import application


async def _budget(store: LedgerStore, cents: int) -> str:
    partnership_id = f"p-{uuid.uuid4().hex[:10]}"
    await store.allocate(
        idempotency_key=f"{partnership_id}:allocate:1", partnership_id=partnership_id, amount_cents=cents
    )
    return partnership_id


async def test_running_the_hold_activity_twice_books_once(pg_pool: asyncpg.Pool) -> None:
    """hold_funds retried with the same key returns the same transfer and holds the money once."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 200_000)
    exchange_id = f"x-{uuid.uuid4().hex[:10]}"
    request = HoldFundsInput(
        exchange_id=exchange_id, partnership_id=partnership, amount_cents=78_000, idempotency_key=hold_key(exchange_id)
    )
    env = ActivityEnvironment()
    first = await env.run(LedgerActivities(store).hold_funds, request)
    second = await env.run(LedgerActivities(store).hold_funds, request)
    assert first.held and second.held
    assert first.transfer_id == second.transfer_id
    assert [t.kind.value for t in await store.exchange_history(exchange_id)] == ["hold"]
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (78_000, 122_000)


async def test_a_refused_hold_is_a_result_and_books_nothing(pg_pool: asyncpg.Pool) -> None:
    """hold_funds on a budget too small returns held=False with what was available, and writes nothing."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 50_000)
    exchange_id = f"x-{uuid.uuid4().hex[:10]}"
    result = await ActivityEnvironment().run(
        LedgerActivities(store).hold_funds,
        HoldFundsInput(
            exchange_id=exchange_id,
            partnership_id=partnership,
            amount_cents=78_000,
            idempotency_key=hold_key(exchange_id),
        ),
    )
    assert (result.held, result.available_cents) == (False, 50_000)
    assert await store.exchange_history(exchange_id) == []


async def test_running_the_void_activity_twice_releases_once(pg_pool: asyncpg.Pool) -> None:
    """void_hold retried with the same key releases the hold's money once."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 100_000)
    exchange_id = f"x-{uuid.uuid4().hex[:10]}"
    hold = await store.hold(
        idempotency_key=hold_key(exchange_id), partnership_id=partnership, exchange_id=exchange_id, amount_cents=39_000
    )
    env, activities = ActivityEnvironment(), LedgerActivities(store)
    request = VoidHoldInput(hold_id=hold.id, idempotency_key=f"{exchange_id}:void:{hold.id}")
    first = await env.run(activities.void_hold, request)
    second = await env.run(activities.void_hold, request)
    assert first == second
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (0, 100_000)


async def test_running_the_payment_activity_twice_pays_and_orders_once(pg_pool: asyncpg.Pool) -> None:
    """post_payment retried posts once, pays out once and writes exactly one payment order."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 100_000)
    exchange_id = f"x-{uuid.uuid4().hex[:10]}"
    hold = await store.hold(
        idempotency_key=hold_key(exchange_id), partnership_id=partnership, exchange_id=exchange_id, amount_cents=78_000
    )
    request = PostPaymentInput(
        exchange_id=exchange_id,
        partnership_id=partnership,
        hold_id=hold.id,
        amount_cents=39_000,
        idempotency_key=f"{exchange_id}:payment",
    )
    env, payments = ActivityEnvironment(), PaymentActivities(pg_pool, store, "http://127.0.0.1:9/finance")
    first = await env.run(payments.post_payment, request)
    second = await env.run(payments.post_payment, request)
    assert first == second
    assert (first.posted_cents, first.released_cents) == (39_000, 39_000)
    assert sorted(t.kind.value for t in await store.exchange_history(exchange_id)) == ["hold", "pay_out", "post"]
    orders = await pg_pool.fetchval("SELECT count(*) FROM payment_orders WHERE application_id = $1", exchange_id)
    assert orders == 1
    outbox = await pg_pool.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", f"payment-order:{exchange_id}")
    assert outbox == 1
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.paid_cents, balance.available_cents) == (0, 39_000, 61_000)


async def test_projecting_a_transition_twice_records_it_once(pg_pool: asyncpg.Pool) -> None:
    """record_transition retried writes one audit row, and an older event never overwrites a newer stage."""
    app = application()
    projection = ProjectionActivities(pg_pool)
    env = ActivityEnvironment()
    now = datetime.now(UTC)

    def event(sequence: int, stage: Stage) -> ProjectTransitionInput:
        return ProjectTransitionInput(
            application=app, stage=stage, at=now, actor_id="system", event="stage_entered", sequence=sequence
        )

    await env.run(projection.record_transition, event(1, Stage.SUBMITTED))
    await env.run(projection.record_transition, event(2, Stage.SCREENING))
    await env.run(projection.record_transition, event(2, Stage.SCREENING))
    await env.run(projection.record_transition, event(1, Stage.SUBMITTED))  # a late retry of an old event
    rows = await pg_pool.fetchval("SELECT count(*) FROM audit_events WHERE application_id = $1", app.application_id)
    stage = await pg_pool.fetchval("SELECT stage FROM exchanges WHERE application_id = $1", app.application_id)
    assert (rows, stage) == (2, "SCREENING")


async def test_a_reminder_becomes_one_notification_email_in_the_outbox(pg_pool: asyncpg.Pool) -> None:
    """With a notification address configured, a reminder's projection enqueues one e-mail, even when retried."""
    app = application()
    projection = ProjectionActivities(pg_pool, notify_email="officers@example.org")
    event = ProjectTransitionInput(
        application=app,
        stage=Stage.REVIEW,
        at=datetime.now(UTC),
        actor_id="system",
        event="review_reminder",
        sequence=3,
        reason="due soon",
    )
    env = ActivityEnvironment()
    await env.run(projection.record_transition, event)
    await env.run(projection.record_transition, event)
    rows = await pg_pool.fetch(
        "SELECT channel, destination, payload FROM outbox WHERE dedup_key = $1", f"notify:{app.application_id}:3"
    )
    assert [(r["channel"], r["destination"]) for r in rows] == [("email", "officers@example.org")]
