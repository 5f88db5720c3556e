"""The programme gauges at the API's /metrics equal the ledger's figures and the read model's counts.

A fresh database per test (real Postgres): budgets booked through the ledger (allocate, hold, post), exchanges
written to the read model in known stages and deadlines; then the gauges are refreshed and read back from
the app's `GET /metrics` (no token), as Prometheus would scrape them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from clients.api import Principal, create_app
from clients.api.metrics import ApiMetrics, gauge_refresher, refresh_gauges
from clients.client import ExchangeClient
from ledger.store import LedgerStore
from tests.waiting import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_pool(make_database: Callable[[], Awaitable[str]]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(await make_database(), min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def _exchange(
    pool: asyncpg.Pool, application_id: str, partnership: str, stage: str, deadline: datetime | None
) -> None:
    await pool.execute(
        """INSERT INTO exchanges (application_id, partnership_id, host_partnership_id, visitor_org_id, host_org_id,
                                  host_country, start_date, end_date, stage, next_deadline, submitted_by,
                                  last_sequence, updated_at)
           VALUES ($1, $2, $2, 'vo', 'ho', 'FR', $3, $3, $4, $5, 'ana', 1, now())""",
        application_id,
        partnership,
        date(2026, 3, 2),
        stage,
        deadline,
    )


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return _samples(answer.text)


async def test_gauges_equal_the_ledger_and_the_read_model(
    fresh_pool: asyncpg.Pool, dev_server_env: WorkflowEnvironment
) -> None:
    """Budgets per partnership and state, exchanges per stage and late ones per deadline, as the ledger says."""
    ledger = LedgerStore(fresh_pool)
    p1, p2 = f"p1-{uuid.uuid4().hex[:6]}", f"p2-{uuid.uuid4().hex[:6]}"
    await ledger.allocate(idempotency_key=f"{p1}:a", partnership_id=p1, amount_cents=500_000)
    await ledger.allocate(idempotency_key=f"{p2}:a", partnership_id=p2, amount_cents=100_000)
    await ledger.hold(idempotency_key="e1:hold:1", partnership_id=p1, application_id="e1", amount_cents=95_000)
    paid = await ledger.hold(idempotency_key="e2:hold:1", partnership_id=p1, application_id="e2", amount_cents=60_000)
    await ledger.post(idempotency_key="e2:post", hold_id=paid.id)
    now = datetime.now(UTC)
    past, future = now - timedelta(days=2), now + timedelta(days=5)
    await _exchange(fresh_pool, "e1", p1, "AGREEMENT", past)  # late: signatures
    await _exchange(fresh_pool, "e2", p1, "PAID", None)
    await _exchange(fresh_pool, "e3", p2, "REVIEW", future)  # waiting as designed
    await _exchange(fresh_pool, "e4", p2, "REVIEW", past)  # late: review
    await _exchange(fresh_pool, "e5", p2, "LAPSED", past)  # closed: never late

    app = create_app(ExchangeClient(dev_server_env.client, "unused"), fresh_pool, {})
    metrics = app.state.metrics
    assert isinstance(metrics, ApiMetrics)
    await refresh_gauges(metrics, fresh_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        samples = await _scrape(http)

    balances = await ledger.partnership_balances()
    assert {b.partnership_id for b in balances} == {p1, p2}
    for balance in balances:
        for state in ("allocated", "held", "paid", "available"):
            labels = (("partnership", balance.partnership_id), ("state", state))
            assert samples[("cx_budget_cents", labels)] == getattr(balance, f"{state}_cents"), (balance, state)
    # The ledger's figures are the ones booked above (so the comparison is not of two empty sets).
    assert samples[("cx_budget_cents", (("partnership", p1), ("state", "available")))] == 345_000
    assert samples[("cx_budget_cents", (("partnership", p1), ("state", "paid")))] == 60_000
    stages = {labels[0][1]: value for (name, labels), value in samples.items() if name == "cx_exchanges"}
    assert {stage: n for stage, n in stages.items() if n} == {"AGREEMENT": 1, "PAID": 1, "REVIEW": 2, "LAPSED": 1}
    assert stages["PAYMENT"] == 0  # every stage is present, with 0 when empty
    late = {labels[0][1]: value for (name, labels), value in samples.items() if name == "cx_exchanges_late"}
    assert {deadline: n for deadline, n in late.items() if n} == {"signatures": 1, "review": 1}
    refreshed = samples[("cx_gauges_refreshed_timestamp_seconds", ())]
    assert abs(refreshed - now.timestamp()) < 60


async def test_the_refresher_follows_the_database_and_metrics_need_no_token(
    fresh_pool: asyncpg.Pool, dev_server_env: WorkflowEnvironment
) -> None:
    """While the refresher runs, a new late exchange shows within a few intervals; /metrics is public and
    not part of the OpenAPI document."""
    app = create_app(
        ExchangeClient(dev_server_env.client, "unused"),
        fresh_pool,
        {"tok-ops-00000000000000": Principal(subject="ops-olga", role="ops")},
    )
    metrics = app.state.metrics
    assert isinstance(metrics, ApiMetrics)
    async with (
        gauge_refresher(metrics, fresh_pool, 0.2),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http,
    ):
        key = ("cx_exchanges_late", (("deadline", "payment_sla"),))
        first = await eventually(lambda: _scrape(http), lambda s: key in s, "a first refresh", 10)
        assert first[key] == 0
        await _exchange(fresh_pool, "late-1", "p9", "PAYMENT", datetime.now(UTC) - timedelta(hours=1))
        await eventually(lambda: _scrape(http), lambda s: s.get(key) == 1, "the late exchange counted", 10)
        schema = (await http.get("/openapi.json")).json()
        assert "/metrics" not in schema["paths"]
