"""The partnership waitlist (Funds workflow): released money goes to the oldest waiting exchange first."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.funding import funds_workflow_id
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application
from tests.workflows.conftest import Fund, approve, result_of, wait_for_stage
from tests.workflows.histories import record, replay_and_maybe_record


async def _approved(client: ExchangeClient, partnership: str, stage: Stage) -> str:
    app = application(visitor_partnership_id=partnership)
    await client.start_exchange(app)
    await approve(client, app.application_id)
    await wait_for_stage(client, app.application_id, stage)
    return app.application_id


async def _queue(client: ExchangeClient, partnership: str) -> list[str]:
    handle = client.temporal.get_workflow_handle(funds_workflow_id(partnership))
    queue: list[str] = await handle.query("queue", result_type=list[str])
    return queue


async def test_released_money_goes_to_the_oldest_waiting_exchange_first(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund
) -> None:
    """With room for one grant: A holds, B then C wait; A's cancellation funds B (not C); B's funds C."""
    partnership = await funded_partnership(100_000)
    first = await _approved(ts_client, partnership, Stage.AGREEMENT)
    older = await _approved(ts_client, partnership, Stage.WAITLISTED)
    younger = await _approved(ts_client, partnership, Stage.WAITLISTED)
    assert await _queue(ts_client, partnership) == [older, younger]

    await ts_client.cancel(first, {"actor_id": "officer-olga", "reason": "host closed"})
    status = await wait_for_stage(ts_client, older, Stage.AGREEMENT)
    assert status.held_cents == 95_000
    assert status.hold_transfer_id is not None
    assert (await ts_client.status(younger)).stage is Stage.WAITLISTED
    assert await _queue(ts_client, partnership) == [younger]

    await ts_client.cancel(older, {"actor_id": "officer-olga", "reason": "visitor ill"})
    await wait_for_stage(ts_client, younger, Stage.AGREEMENT)
    balance = {b.partnership_id: b for b in await ledger_store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (95_000, 5_000)
    funds = ts_client.temporal.get_workflow_handle(funds_workflow_id(partnership))
    await replay_and_maybe_record(funds, "funds_fifo")
    await record(ts_client, older, "exchange_waitlisted_funded_cancelled")


async def test_a_withdrawal_while_waiting_leaves_the_line_and_holds_nothing(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund
) -> None:
    """A waitlisted exchange withdrawn by its visitor leaves the queue; later releases skip it."""
    partnership = await funded_partnership(100_000)
    first = await _approved(ts_client, partnership, Stage.AGREEMENT)
    waiting = await _approved(ts_client, partnership, Stage.WAITLISTED)
    await ts_client.withdraw(waiting, {"actor_id": "visitor-vera", "reason": "found other funding"})
    assert (await result_of(ts_client, waiting)).stage is Stage.WITHDRAWN
    assert await _queue(ts_client, partnership) == []
    await ts_client.cancel(first, {"actor_id": "officer-olga", "reason": "host closed"})
    await result_of(ts_client, first)
    balance = {b.partnership_id: b for b in await ledger_store.partnership_balances()}[partnership]
    assert (balance.held_cents, balance.available_cents) == (0, 100_000)


async def test_the_waitlist_deadline_expires_the_exchange_and_empties_the_line(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
) -> None:
    """Nothing released for 60 days: the waiting exchange EXPIRES holding nothing and leaves the queue."""
    partnership = await funded_partnership(10_000)
    waiting = await _approved(ts_client, partnership, Stage.WAITLISTED)
    await time_skipping_env.sleep(timedelta(days=61))
    assert (await result_of(ts_client, waiting)).stage is Stage.EXPIRED
    assert await _queue(ts_client, partnership) == []
    balance = {b.partnership_id: b for b in await ledger_store.partnership_balances()}[partnership]
    assert balance.held_cents == 0


async def test_a_top_up_offers_the_new_money_to_the_waitlist(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund, database_url: str
) -> None:
    """`cx top-up` books the allocation once (re-run with the same reference) and funds the waiting exchange."""
    partnership = await funded_partnership(10_000)
    waiting = await _approved(ts_client, partnership, Stage.WAITLISTED)
    address = ts_client.temporal.service_client.config.target_host
    env = {"DATABASE_URL": database_url, "TEMPORAL_ADDRESS": address, "CX_TASK_QUEUE": ts_client.task_queue}
    for expected in ("booked", "already booked"):
        result = cx("top-up", partnership, "900", "--reference", "EISMEA-42", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(expected)
    await wait_for_stage(ts_client, waiting, Stage.AGREEMENT)
    balance = {b.partnership_id: b for b in await ledger_store.partnership_balances()}[partnership]
    assert (balance.allocated_cents, balance.held_cents, balance.available_cents) == (100_000, 95_000, 5_000)
    refused = cx("top-up", partnership, "12.345", "--reference", "x", env=env)
    assert refused.returncode == 2
    assert "two decimals" in refused.stderr
