"""The dispatcher's Prometheus metrics (issue 15's agreed names), served with prometheus_client on CX_METRICS_ADDRESS.

Counters and the histogram are updated on every delivery attempt; the outbox gauges (backlog, oldest age, dead
letters) are read from Postgres each dispatcher loop, so every dispatcher reports the same whole-outbox figures
(take max(), not sum(), across replicas). Each Dispatcher has its own registry: several in one process (tests,
`make run`) never collide, and /metrics shows exactly these families.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final
from wsgiref.simple_server import WSGIServer

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

CHANNELS: Final = ("webhook", "email")
OUTCOMES: Final = ("delivered", "failed", "dead")
# From a local relay's milliseconds to an attempt's whole budget (2 x the 10 s timeout).
DELIVERY_SECONDS_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)

# Both use the partial indexes of migration 0005 (pending rows; dead rows), never the whole delivered history.
_PENDING_SQL = """
SELECT channel, count(*) AS backlog, extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_s
  FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL GROUP BY channel
"""
_DEAD_SQL = "SELECT channel, count(*) AS dead FROM outbox WHERE dead_at IS NOT NULL GROUP BY channel"


@dataclass(frozen=True)
class MetricsServer:
    """A running /metrics endpoint; `close()` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class DispatcherMetrics:
    """`cx_dispatcher_deliveries_total`, `cx_dispatcher_delivery_seconds`, `cx_outbox_backlog`,
    `cx_outbox_oldest_age_seconds` and `cx_outbox_dead`, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "cx_dispatcher_deliveries",
            "Outbox delivery attempts by channel and outcome (delivered, failed and to be retried, dead).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "cx_dispatcher_delivery_seconds",
            "Duration of one delivery attempt, in-delivery retries included.",
            ["channel"],
            buckets=DELIVERY_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.backlog = Gauge(
            "cx_outbox_backlog", "Outbox messages not delivered and not dead.", ["channel"], registry=self.registry
        )
        self.oldest_age = Gauge(
            "cx_outbox_oldest_age_seconds",
            "Age of the oldest message of the backlog (0 when empty).",
            ["channel"],
            registry=self.registry,
        )
        self.dead = Gauge("cx_outbox_dead", "Outbox messages parked as dead.", ["channel"], registry=self.registry)
        # Every series exists from the start, at 0: an alert on rate() or absent() needs it before the first event.
        for channel in CHANNELS:
            for outcome in OUTCOMES:
                self.deliveries.labels(channel, outcome)
            self.delivery_seconds.labels(channel)
            for gauge in (self.backlog, self.oldest_age, self.dead):
                gauge.labels(channel).set(0)

    def observe(self, channel: str, outcome: str, seconds: float) -> None:
        """Count one attempt and its duration."""
        self.deliveries.labels(channel, outcome).inc()
        self.delivery_seconds.labels(channel).observe(seconds)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Read the outbox gauges from Postgres (two index-backed queries)."""
        async with pool.acquire() as conn:
            pending = {row["channel"]: row for row in await conn.fetch(_PENDING_SQL)}
            dead = {row["channel"]: row["dead"] for row in await conn.fetch(_DEAD_SQL)}
        for channel in CHANNELS:
            row = pending.get(channel)
            self.backlog.labels(channel).set(row["backlog"] if row else 0)
            self.oldest_age.labels(channel).set(max(0.0, row["oldest_age_s"]) if row else 0)
            self.dead.labels(channel).set(dead.get(channel, 0))

    def serve(self, address: str) -> MetricsServer:
        """Serve these metrics at http://<address>/metrics (`host:port`; port 0 takes a free one)."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"CX_METRICS_ADDRESS={address!r}: must be host:port")
        server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        return MetricsServer(server, thread)
