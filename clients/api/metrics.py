"""What `cx api` serves at `GET /metrics` (Prometheus text): the programme gauges and the API's own HTTP metrics.

The names are the agreed contract of issue 15 (the Grafana dashboard and the alert rules read them;
docs/operations.md, "Metrics", says what to do when one moves):
- `cx_budget_cents{partnership,state}` (state allocated|held|paid|available), `cx_exchanges{stage}`,
  `cx_exchanges_late{deadline}` and `cx_gauges_refreshed_timestamp_seconds`, set from Postgres
  (ledger/gauges.py) by `refresh_gauges`, which `run_gauge_refresher` calls every CX_GAUGE_INTERVAL_S;
- `cx_http_requests_total{method,route,status}` and `cx_http_request_seconds{method,route}`, counted by
  the access log (clients/api/access_log.py) for every request.

Each app has its own registry (no process-wide state), so tests build as many apps as they like; the
process serves one. A scrape reads the last refresh, never Postgres: a scraper that polls every second costs
the database nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ledger.gauges import STAGE_DEADLINES, programme_figures
from schemas.stages import Stage

METRICS_PATH = "/metrics"
BUDGET_STATES = ("allocated", "held", "paid", "available")
# Request durations from 5 ms (a probe) to 30 s (the whole-request deadline of the default engine timeout).
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
logger = logging.getLogger(__name__)


@dataclass
class ApiMetrics:
    """One app's registry and the metrics in it."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.budget_cents = Gauge(
            "cx_budget_cents", "Budget per partnership in cents, by state", ["partnership", "state"], registry=r
        )
        self.exchanges = Gauge("cx_exchanges", "Exchanges per stage (read model)", ["stage"], registry=r)
        self.exchanges_late = Gauge(
            "cx_exchanges_late", "Open exchanges past their next deadline, by deadline", ["deadline"], registry=r
        )
        self.refreshed = Gauge(
            "cx_gauges_refreshed_timestamp_seconds", "When the programme gauges were last read (Unix time)", registry=r
        )
        self.requests = Counter("cx_http_requests", "API requests answered", ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram(
            "cx_http_request_seconds",
            "API request duration",
            ["method", "route"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def refresh_gauges(metrics: ApiMetrics, pool: asyncpg.Pool) -> None:
    """Set every programme gauge from one snapshot of Postgres; stages and deadlines with none read 0."""
    figures = await programme_figures(pool)
    for balance in figures.budgets:
        amounts = (balance.allocated_cents, balance.held_cents, balance.paid_cents, balance.available_cents)
        for state, cents in zip(BUDGET_STATES, amounts, strict=True):
            metrics.budget_cents.labels(partnership=balance.partnership_id, state=state).set(cents)
    for stage in [*Stage, *figures.exchanges_by_stage]:
        metrics.exchanges.labels(stage=str(stage)).set(figures.exchanges_by_stage.get(str(stage), 0))
    for deadline in [*STAGE_DEADLINES.values(), *figures.late_by_deadline]:
        metrics.exchanges_late.labels(deadline=deadline).set(figures.late_by_deadline.get(deadline, 0))
    metrics.refreshed.set(time.time())


async def run_gauge_refresher(metrics: ApiMetrics, pool: asyncpg.Pool, interval_s: float) -> None:
    """Refresh the gauges now and then every `interval_s` until cancelled; a failed refresh is logged and
    the last values stay (their age shows in cx_gauges_refreshed_timestamp_seconds, which alerts watch)."""
    while True:
        try:
            await asyncio.wait_for(refresh_gauges(metrics, pool), timeout=interval_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("programme gauges not refreshed", extra={"error": str(error) or type(error).__name__})
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def gauge_refresher(metrics: ApiMetrics, pool: asyncpg.Pool, interval_s: float | None) -> AsyncIterator[None]:
    """Run the refresher for the block (the app's lifespan); nothing when `interval_s` is None."""
    task = None if interval_s is None else asyncio.create_task(run_gauge_refresher(metrics, pool, interval_s))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def gauge_lifespan(
    metrics: ApiMetrics, pool: asyncpg.Pool, interval_s: float | None
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """An app's lifespan that runs the refresher while the app serves (`cx api`, `make run`)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with gauge_refresher(metrics, pool, interval_s):
            yield

    return lifespan


def add_metrics_route(app: FastAPI, metrics: ApiMetrics) -> None:
    """`GET /metrics`: no token (like the probes), not in the OpenAPI document (it is Prometheus', not ours)."""

    @app.get(METRICS_PATH, include_in_schema=False)
    async def serve_metrics(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
