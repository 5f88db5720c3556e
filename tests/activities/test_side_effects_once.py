"""Every activity with a side effect, run twice with the same input, has its effect once (real Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.funding import LedgerActivities
from activities.payments import PaymentActivities
from activities.projection import ProjectionActivities
from ledger.store import LedgerStore
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.funding import HoldFundsInput, VoidHoldInput
from schemas.ids import hold_key
from schemas.payment import PostPaymentInput
from schemas.policy import load_policy
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
    application_id = f"x-{uuid.uuid4().hex[:10]}"
    request = HoldFundsInput(
        application_id=application_id,
        partnership_id=partnership,
        amount_cents=78_000,
        idempotency_key=hold_key(application_id),
    )
    env = ActivityEnvironment()
    first = await env.run(LedgerActivities(store).hold_funds, request)
    second = await env.run(LedgerActivities(store).hold_funds, request)
    assert first.held
    assert second.held
    assert first.transfer_id == second.transfer_id
    assert [t.kind.value for t in await store.exchange_history(application_id)] == ["hold"]
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (78_000, 122_000)


async def test_a_refused_hold_is_a_result_and_books_nothing(pg_pool: asyncpg.Pool) -> None:
    """hold_funds on a budget too small returns held=False with what was available, and writes nothing."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 50_000)
    application_id = f"x-{uuid.uuid4().hex[:10]}"
    result = await ActivityEnvironment().run(
        LedgerActivities(store).hold_funds,
        HoldFundsInput(
            application_id=application_id,
            partnership_id=partnership,
            amount_cents=78_000,
            idempotency_key=hold_key(application_id),
        ),
    )
    assert (result.held, result.available_cents) == (False, 50_000)
    assert await store.exchange_history(application_id) == []


async def test_running_the_void_activity_twice_releases_once(pg_pool: asyncpg.Pool) -> None:
    """void_hold retried with the same key releases the hold's money once."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 100_000)
    application_id = f"x-{uuid.uuid4().hex[:10]}"
    hold = await store.hold(
        idempotency_key=hold_key(application_id),
        partnership_id=partnership,
        application_id=application_id,
        amount_cents=39_000,
    )
    env, activities = ActivityEnvironment(), LedgerActivities(store)
    request = VoidHoldInput(hold_id=hold.id, idempotency_key=f"{application_id}:void:{hold.id}")
    first = await env.run(activities.void_hold, request)
    second = await env.run(activities.void_hold, request)
    assert first == second
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (0, 100_000)


def _event(sequence: int, stage: Stage, name: EventName = EventName.STAGE_ENTERED, reason: str = "") -> ProjectedEvent:
    return ProjectedEvent(
        sequence=sequence, event=name, stage=stage, at=datetime.now(UTC), actor_id="system", reason=reason
    )


async def test_running_the_payment_activity_twice_pays_and_orders_once(pg_pool: asyncpg.Pool) -> None:
    """post_payment retried posts once, pays out once, writes exactly one payment order, one outbox message and
    one `payment_ordered` audit row, with the batch it carries written once too."""
    store = LedgerStore(pg_pool)
    partnership = await _budget(store, 200_000)
    app = application(visitor_partnership_id=partnership)
    hold = await store.hold(
        idempotency_key=hold_key(app.application_id),
        partnership_id=partnership,
        application_id=app.application_id,
        amount_cents=100_000,
    )
    request = PostPaymentInput(
        application=app,
        policy=load_policy(),
        hold_id=hold.id,
        held_cents=100_000,
        grant_cents=95_000,
        idempotency_key=f"{app.application_id}:payment",
        projection=ProjectionBatch(application=app, events=(_event(1, Stage.PAYMENT),)),
        sequence=2,
        stage=Stage.PAYMENT,
        now=datetime.now(UTC),
        sla_due=datetime.now(UTC),
    )
    env, payments = ActivityEnvironment(), PaymentActivities(pg_pool, store, "http://127.0.0.1:9/finance")
    first = await env.run(payments.post_payment, request)
    second = await env.run(payments.post_payment, request)
    assert first == second
    assert (first.posted_cents, first.released_cents) == (95_000, 5_000)  # priced at 950 EUR, never above the hold
    kinds = sorted(t.kind.value for t in await store.exchange_history(app.application_id))
    assert kinds == ["hold", "pay_out", "post"]
    orders = await pg_pool.fetchval("SELECT count(*) FROM payment_orders WHERE application_id = $1", app.application_id)
    outbox = await pg_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE dedup_key = $1", f"payment-order:{app.application_id}"
    )
    events = await pg_pool.fetch(
        "SELECT sequence, event FROM audit_events WHERE application_id = $1 ORDER BY sequence", app.application_id
    )
    assert (orders, outbox) == (1, 1)
    assert [(e["sequence"], e["event"]) for e in events] == [(1, "stage_entered"), (2, "payment_ordered")]
    balance = {b.partnership_id: b for b in await store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.paid_cents, balance.available_cents) == (0, 95_000, 105_000)


async def test_writing_a_batch_twice_records_it_once(pg_pool: asyncpg.Pool) -> None:
    """record_events retried writes each audit row once, and an older batch never overwrites a newer stage."""
    app = application()
    projection = ProjectionActivities(pg_pool)
    env = ActivityEnvironment()
    older = ProjectionBatch(application=app, events=(_event(1, Stage.SUBMITTED),))
    newer = ProjectionBatch(application=app, events=(_event(2, Stage.SCREENING), _event(3, Stage.REVIEW)))
    await env.run(projection.record_events, older)
    await env.run(projection.record_events, newer)
    await env.run(projection.record_events, newer)
    await env.run(projection.record_events, older)  # a late retry of an old batch
    rows = await pg_pool.fetchval("SELECT count(*) FROM audit_events WHERE application_id = $1", app.application_id)
    stage = await pg_pool.fetchval("SELECT stage FROM exchanges WHERE application_id = $1", app.application_id)
    assert (rows, stage) == (3, "REVIEW")


async def test_a_reminder_becomes_one_notification_email_in_the_outbox(pg_pool: asyncpg.Pool) -> None:
    """With a notification address configured, a reminder's write enqueues one e-mail, even when retried."""
    app = application()
    projection = ProjectionActivities(pg_pool, notify_email="officers@example.org")
    batch = ProjectionBatch(application=app, events=(_event(3, Stage.REVIEW, EventName.REVIEW_REMINDER, "due soon"),))
    env = ActivityEnvironment()
    await env.run(projection.record_events, batch)
    await env.run(projection.record_events, batch)
    rows = await pg_pool.fetch(
        "SELECT channel, destination, payload FROM outbox WHERE dedup_key = $1", f"notify:{app.application_id}:3"
    )
    assert [(r["channel"], r["destination"]) for r in rows] == [("email", "officers@example.org")]
