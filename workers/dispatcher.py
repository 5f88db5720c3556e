"""The outbox dispatcher: delivers outbox messages at least once, as signed webhooks or e-mails.

Each `run_once` claims a batch of due rows with `FOR UPDATE SKIP LOCKED` (so several dispatchers can
run side by side without delivering a row twice), leases them by moving `next_attempt_at` past the
delivery budget, and commits at once: no transaction stays open across network calls. Deliveries
of a batch run concurrently on the event loop, each bounded by `delivery_limit_s`. A success sets
`delivered_at`; a failure schedules a retry with exponential backoff, and after `max_attempts` (or at
once, when the receiver refused the message for good) the row is parked as dead with its last error for
ops. A dispatcher that dies mid-batch loses nothing: its lease expires and another dispatcher delivers
again, which is why receivers must deduplicate on the dedup key (the webhook-id). ADR 0007, ADR 0019.

The parts are maintained libraries: httpx for webhooks (workers/webhook_delivery.py, with stamina's short
in-delivery retries), Standard Webhooks signatures (workers/webhook_signing.py), aiosmtplib with STARTTLS
and AUTH for e-mail (workers/email_delivery.py), prometheus_client metrics (workers/dispatcher_metrics.py)
and an OpenTelemetry span per delivery, the child of the span that enqueued the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import SecretStr

from activities.outbox import OutboxMessage
from workers.dispatcher_metrics import DispatcherMetrics
from workers.email_delivery import SmtpConfig, SmtpTls, check_smtp_auth, send_email
from workers.logging import get_logger
from workers.settings import Settings
from workers.webhook_delivery import DeliveryFailed, PermanentRefusal, WebhookPolicy, WebhookSender
from workers.webhook_signing import signing_key

log = get_logger(__name__)

MAX_ERROR_CHARS = 1000
_PROPAGATOR = TraceContextTextMapPropagator()

__all__ = ["DeliveryFailed", "Dispatcher", "DispatcherConfig", "PermanentRefusal"]


@dataclass(frozen=True)
class DispatcherConfig:
    """How the dispatcher delivers: from the one Settings (`from_settings`), passed down."""

    webhook_secret: str = field(repr=False)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "clusterxchange@localhost"
    smtp_tls: SmtpTls = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = field(default=None, repr=False)
    smtp_ca_file: Path | None = None
    batch_size: int = 20
    max_attempts: int = 10
    base_backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    timeout_s: float = 10.0
    poll_interval_s: float = 1.0
    # Tries within one attempt for transient HTTP trouble (stamina; 1 = none), and the first wait between them.
    retry_attempts: int = 3
    retry_wait_initial_s: float = 0.2

    def __post_init__(self) -> None:
        if not self.webhook_secret:
            raise ValueError("webhook_secret must not be empty: webhooks are always signed")
        signing_key(self.webhook_secret)  # a malformed whsec_ secret is refused at start, not at the first webhook
        if not 1 <= self.batch_size <= 100:
            raise ValueError("batch_size must be within 1..100")
        if not 1 <= self.max_attempts <= 100:
            raise ValueError("max_attempts must be within 1..100")
        if not 0 < self.timeout_s <= 300:
            raise ValueError("timeout_s must be within (0, 300]")
        if not 0 <= self.base_backoff_s <= self.max_backoff_s:
            raise ValueError("backoff must satisfy 0 <= base_backoff_s <= max_backoff_s")
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        if not 1 <= self.retry_attempts <= 10 or not 0 <= self.retry_wait_initial_s <= self.timeout_s:
            raise ValueError("retry_attempts must be within 1..10 and retry_wait_initial_s within [0, timeout_s]")
        check_smtp_auth(self.smtp_tls, self.smtp_username, self.smtp_password)  # at start, not at the first e-mail

    @property
    def delivery_limit_s(self) -> float:
        """The most one delivery attempt may take, its in-delivery retries included."""
        return 2 * self.timeout_s

    @property
    def lease_s(self) -> float:
        """How long a claim keeps other dispatchers away: longer than any delivery can take."""
        return self.delivery_limit_s + 5

    @property
    def smtp(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.smtp_sender,
            tls=self.smtp_tls,
            username=self.smtp_username,
            password=self.smtp_password,
            ca_file=self.smtp_ca_file,
        )

    @property
    def webhook_policy(self) -> WebhookPolicy:
        return WebhookPolicy(
            timeout_s=self.timeout_s,
            retry_attempts=self.retry_attempts,
            retry_wait_initial_s=self.retry_wait_initial_s,
            retry_wait_max_s=max(self.retry_wait_initial_s, self.timeout_s / 2),
            max_connections=self.batch_size,
        )

    def backoff_s(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failed ones: doubling, capped."""
        return float(min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, attempts - 1)))

    @classmethod
    def from_settings(cls, settings: Settings, *, webhook_secret: str | None = None) -> DispatcherConfig:
        """The dispatcher's configuration from the process's one Settings; refused without a signing key.

        `webhook_secret` stands in for CX_WEBHOOK_SECRET when unset (`make run`'s per-run secret).
        """
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else webhook_secret
        if secret is None:
            raise ValueError("CX_WEBHOOK_SECRET is not set: the dispatcher signs every webhook with it")
        return cls(
            webhook_secret=secret,
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_sender=settings.smtp_sender,
            smtp_tls=settings.smtp_tls,
            smtp_username=settings.smtp_username,
            smtp_password=settings.smtp_password,
            smtp_ca_file=settings.smtp_ca_file,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DispatcherConfig:
        """The same from a mapping of the variables (tests, tools): parsed by Settings' rules, nothing else read."""
        return cls.from_settings(Settings.from_env(environ))


@dataclass(frozen=True)
class _Outcome:
    """What one attempt came to: the error recorded (None when delivered), whether it parks the row at once,
    and the least delay the receiver asked for (a long Retry-After)."""

    error: str | None = None
    permanent: bool = False
    not_before_s: float = 0.0


_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM outbox
     WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now() AND attempts < $1
     ORDER BY next_attempt_at, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE outbox o
   SET attempts = o.attempts + 1,
       next_attempt_at = now() + make_interval(secs => $3),
       claim_token = $4
  FROM due
 WHERE o.id = due.id
RETURNING o.id, o.dedup_key, o.topic, o.channel, o.destination, o.payload, o.attempts, o.created_at, o.trace_context
"""

# Rows whose every attempt was used up without a recorded outcome (their dispatcher died mid-delivery,
# e.g. on a message that crashes it): park them instead of retrying forever.
_PARK_ABANDONED_SQL = """
UPDATE outbox
   SET dead_at = now(),
       last_error = coalesce(last_error || ' / ', '') || 'no outcome recorded for the last attempt (dispatcher lost)'
 WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now() AND attempts >= $1
"""


class Dispatcher:
    """Delivers due outbox rows; safe to run in several processes at once (see module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: DispatcherConfig,
        *,
        metrics: DispatcherMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._pool = pool
        self._config = config
        self.metrics = metrics or DispatcherMetrics()
        # The global provider's tracer unless one is given (tests): workers/tracing.py sets the provider, and
        # without one every span is a no-op that still carries the enqueuer's trace context onwards.
        self._tracer = tracer or trace.get_tracer(__name__)
        self._webhooks = WebhookSender(signing_key(config.webhook_secret), config.webhook_policy)
        self._gauges_read_at = -float("inf")

    async def close(self) -> None:
        """Close the pooled HTTP connections."""
        await self._webhooks.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; poll again at once while batches come back full."""
        while not stop.is_set():
            try:
                claimed = await self.run_once()
                await self._refresh_gauges()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # The database is away (restart, failover): keep the process and try again later; rows
                # stay in the outbox, so nothing is lost while we wait.
                log.warning("outbox_poll_failed", error=repr(error))
                claimed = 0
            if claimed < self._config.batch_size:
                # Waking on `stop` ends the loop at once; the timeout is the next poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._config.poll_interval_s)

    async def _refresh_gauges(self) -> None:
        # At most once per poll interval: a loop that spins on full batches need not count the outbox each time.
        now = time.monotonic()
        if now - self._gauges_read_at >= self._config.poll_interval_s:
            self._gauges_read_at = now
            await self.metrics.refresh(self._pool)

    async def run_once(self) -> int:
        """Claim one batch of due messages and attempt each once; return how many were claimed."""
        token = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_PARK_ABANDONED_SQL, self._config.max_attempts)
            rows = await conn.fetch(
                _CLAIM_SQL, self._config.max_attempts, self._config.batch_size, self._config.lease_s, token
            )
        messages = [OutboxMessage.model_validate({**dict(row), "payload": json.loads(row["payload"])}) for row in rows]
        await asyncio.gather(*(self._attempt(message, token) for message in messages))
        return len(messages)

    async def _attempt(self, message: OutboxMessage, token: uuid.UUID) -> None:
        # The delivery span continues the trace of the span that enqueued the message (migration 0012).
        parent = _PROPAGATOR.extract({"traceparent": message.trace_context}) if message.trace_context else None
        started = time.monotonic()
        with self._tracer.start_as_current_span(
            f"outbox deliver {message.topic}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "cx.outbox.id": message.id,
                "cx.outbox.channel": message.channel,
                "cx.outbox.attempt": message.attempts,
            },
        ) as span:
            outcome = await self._deliver(message)
            if outcome.error is not None:
                span.set_status(Status(StatusCode.ERROR, outcome.error))
        duration_s = time.monotonic() - started
        if outcome.error is None:
            await self._pool.execute(
                "UPDATE outbox SET delivered_at = now() WHERE id = $1 AND delivered_at IS NULL", message.id
            )
            recorded = "delivered"
        else:
            recorded = await self._record_failure(message, token, outcome)
        self.metrics.observe(message.channel, _METRIC_OUTCOMES[recorded], duration_s)
        # One canonical line per delivery attempt.
        log.info(
            "outbox_delivery",
            outbox_id=message.id,
            dedup_key=message.dedup_key,
            topic=message.topic,
            channel=message.channel,
            attempt=message.attempts,
            outcome=recorded,
            duration_ms=round(duration_s * 1000),
            error=outcome.error,
        )

    async def _deliver(self, message: OutboxMessage) -> _Outcome:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)  # the delivery span's own traceparent, for the receiver
        try:
            # The clients' own timeouts apply per operation; this bounds the whole attempt, retries included.
            async with asyncio.timeout(self._config.delivery_limit_s):
                if message.channel == "webhook":
                    await self._webhooks.post(message, carrier.get("traceparent"))
                else:
                    await send_email(message, self._config.smtp, self._config.timeout_s)
        except PermanentRefusal as refusal:
            return _Outcome(error=_describe(refusal), permanent=True)
        except DeliveryFailed as failure:
            return _Outcome(error=_describe(failure), not_before_s=failure.retry_after_s or 0.0)
        except Exception as exc:  # noqa: BLE001 - recorded on the row, as said below
            # Deliberately broad: one message failing in any way (receiver down, a payload our renderer
            # cannot handle) must not stop the rest of the batch. The error is recorded on the row and
            # the row parks after max_attempts, so nothing fails silently.
            return _Outcome(error=_describe(exc))
        return _Outcome()

    async def _record_failure(self, message: OutboxMessage, token: uuid.UUID, outcome: _Outcome) -> str:
        dead = outcome.permanent or message.attempts >= self._config.max_attempts
        delay_s = max(self._config.backoff_s(message.attempts), min(outcome.not_before_s, self._config.max_backoff_s))
        # The claim token guards against a dispatcher whose lease expired overwriting a newer claim.
        status = await self._pool.execute(
            """UPDATE outbox
                  SET last_error = $3,
                      dead_at = CASE WHEN $4 THEN now() END,
                      next_attempt_at = CASE WHEN $4 THEN next_attempt_at ELSE now() + make_interval(secs => $5) END
                WHERE id = $1 AND claim_token = $2 AND delivered_at IS NULL AND dead_at IS NULL""",
            message.id,
            token,
            outcome.error,
            dead,
            delay_s,
        )
        if status == "UPDATE 0":
            return "failed_claim_lost"
        return "dead" if dead else "retry_scheduled"


# The log's outcomes onto the metric's agreed three.
_METRIC_OUTCOMES = {
    "delivered": "delivered",
    "retry_scheduled": "failed",
    "failed_claim_lost": "failed",
    "dead": "dead",
}


def _describe(error: BaseException) -> str:
    # A bare TimeoutError (the attempt's own limit) has no message: say what ran out.
    text = str(error) or ("the delivery's time limit ran out" if isinstance(error, TimeoutError) else "")
    return f"{type(error).__name__}: {text}"[:MAX_ERROR_CHARS]
