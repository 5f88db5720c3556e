"""`cx payments` and `cx signal ... confirm_payment` against a real exchange in PAYMENT (issue 10, items 6-7).

The exchange is driven to its payment order on the time-skipping server with the real activities; the
CLI runs as a subprocess in a thread, since the worker answering it shares this test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import asyncpg
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.exit_codes import ExitCode
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application
from tests.workflows.conftest import Fund, result_of, wait_for_stage
from tests.workflows.conftest import funded_partnership as funded_partnership  # fixture
from tests.workflows.conftest import ledger_store as ledger_store  # fixture funded_partnership uses
from tests.workflows.conftest import ts_client as ts_client  # fixture: a worker on the time-skipping server
from tests.workflows.test_edges import confirmation, drive_to_payment

RESULT_WITHIN_S = 60


async def _cx(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cx, *args, env=env)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr.strip()


async def _orders(partnership: str, env: dict[str, str], *state: str) -> list[dict[str, Any]]:
    result = await _cx("payments", "--partnership", partnership, "--json", *state, env=env)
    assert result.returncode == ExitCode.OK, result.stderr
    orders: list[dict[str, Any]] = json.loads(result.stdout)
    return orders


async def test_finance_reconciles_and_confirms_from_the_command_line(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    funded_partnership: Fund,
    pg_pool: asyncpg.Pool,
    database_url: str,
) -> None:
    """The order is listed with its state (pending, overdue past the SLA, confirmed) in EUR and in cents; a
    confirmation naming another amount or order is refused naming the field (exit 2) and sends nothing; the
    right one is sent and the exchange is PAID; a repeat answers "already confirmed" without sending (exit
    0); another reference for the same order is a conflict (exit 4)."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    app_id = app.application_id
    await ts_client.start_exchange(app)
    await wait_for_stage(ts_client, app_id, Stage.REVIEW)
    status = await drive_to_payment(ts_client, time_skipping_env, pg_pool, app_id)
    order_id, amount = status.payment_order_id, status.paid_cents
    assert order_id is not None
    assert amount > 0
    env = {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": ts_client.temporal.service_client.config.target_host,
        "CX_TASK_QUEUE": ts_client.task_queue,
    }

    (listed,) = await _orders(partnership, env)
    assert (listed["payment_order_id"], listed["amount_cents"], listed["state"]) == (order_id, amount, "pending")
    table = await _cx("payments", "--partnership", partnership, env=env)
    assert table.returncode == ExitCode.OK
    assert f"{amount // 100:,}.{amount % 100:02d} EUR" in table.stdout
    assert await _orders(partnership, env, "--state", "overdue") == []
    # Finance has not answered for 11 days (the policy's SLA is 10): the order is overdue. The order's
    # creation time is moved back rather than the clock forward, since the SLA is counted from it.
    await pg_pool.execute(
        "UPDATE payment_orders SET created_at = created_at - interval '11 days' WHERE application_id = $1", app_id
    )
    assert [o["payment_order_id"] for o in await _orders(partnership, env, "--state", "overdue")] == [order_id]

    wrong_amount = await _cx(
        "signal", app_id, "confirm_payment", "--data", json.dumps(confirmation(order_id, amount + 1)), env=env
    )
    assert wrong_amount.returncode == ExitCode.USAGE
    assert "amount_cents" in _one_line(wrong_amount)
    wrong_order = await _cx(
        "signal", app_id, "confirm_payment", "--data", json.dumps(confirmation(f"{order_id}-x", amount)), env=env
    )
    assert wrong_order.returncode == ExitCode.USAGE
    assert "payment_order_id" in _one_line(wrong_order)
    assert (await ts_client.status(app_id)).stage is Stage.PAYMENT

    right = json.dumps(confirmation(order_id, amount, "SEPA-CLI-1"))
    sent = await _cx("signal", app_id, "confirm_payment", "--data", right, env=env)
    assert sent.returncode == ExitCode.OK, sent.stderr
    assert "confirm_payment sent" in sent.stdout, sent.stderr
    outcome = await result_of(ts_client, app_id, RESULT_WITHIN_S)
    assert outcome.stage is Stage.PAID

    again = await _cx("signal", app_id, "confirm_payment", "--data", right, env=env)
    assert again.returncode == ExitCode.OK, again.stderr
    assert "already confirmed" in again.stdout
    assert "SEPA-CLI-1" in again.stdout
    assert "nothing sent" in again.stdout
    other = json.dumps(confirmation(order_id, amount, "SEPA-CLI-2"))
    conflict = await _cx("signal", app_id, "confirm_payment", "--data", other, env=env)
    assert conflict.returncode == ExitCode.CONFLICT
    assert "SEPA-CLI-1" in _one_line(conflict)

    (confirmed,) = await _orders(partnership, env, "--state", "confirmed")
    assert (confirmed["payment_reference"], confirmed["confirmed_by"]) == ("SEPA-CLI-1", "finance-fia")
    reference = await pg_pool.fetchval("SELECT payment_reference FROM payment_orders WHERE application_id = $1", app_id)
    assert reference == "SEPA-CLI-1"


async def test_a_confirmation_for_an_exchange_without_an_order_is_refused(database_url: str) -> None:
    """Nothing has been ordered for this exchange: the confirmation is refused naming payment_order_id (exit
    2), without contacting Temporal (none is configured here)."""
    data = json.dumps(confirmation("po-app-never-ordered", 95_000))
    result = await _cx(
        "signal", "app-never-ordered", "confirm_payment", "--data", data, env={"DATABASE_URL": database_url}
    )
    assert result.returncode == ExitCode.USAGE
    assert "payment_order_id" in _one_line(result)
    assert "has not been ordered yet" in result.stderr


async def test_no_orders_prints_a_sentence_not_an_empty_table(database_url: str) -> None:
    """For a partnership without orders the human view says so; JSON is an empty list."""
    env = {"DATABASE_URL": database_url}
    result = await _cx("payments", "--partnership", "p-without-orders", "--state", "overdue", env=env)
    assert result.returncode == ExitCode.OK
    assert result.stdout.strip() == ("no overdue payment orders for partnership p-without-orders")
    assert await _orders("p-without-orders", env) == []
