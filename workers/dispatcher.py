"""The outbox dispatcher: delivers outbox messages at least once, as signed webhooks or e-mails.

Each `run_once` claims a batch of due rows with `FOR UPDATE SKIP LOCKED` (so several dispatchers can
run side by side without delivering a row twice), leases them by moving `next_attempt_at` past the
delivery timeout, and commits at once: no transaction stays open across network calls. Deliveries
of a batch run concurrently, each bounded by `timeout_s`. A success sets `delivered_at`; a failure
schedules a retry with exponential backoff, and after `max_attempts` the row is parked as dead with
its last error for ops. A dispatcher that dies mid-batch loses nothing: its lease expires and another
dispatcher delivers again, which is why receivers must deduplicate on the dedup key. ADR 0007.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import smtplib
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_DEFAULT_POLICY
from email.utils import formatdate
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from activities.outbox import OutboxMessage, encode_payload
from workers.logging import get_logger
from workers.settings import Settings

log = get_logger(__name__)

MAX_ERROR_CHARS = 1000
MAX_RESPONSE_SNIPPET_BYTES = 200
SMTP_POLICY = SMTP_DEFAULT_POLICY.clone(max_line_length=998)


class DeliveryFailed(Exception):
    """The receiver did not accept the message (non-2xx, SMTP refusal); it will be retried."""


@dataclass(frozen=True)
class DispatcherConfig:
    """How the dispatcher delivers: from the one Settings (`from_settings`), passed down."""

    webhook_secret: str
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "clusterxchange@localhost"
    batch_size: int = 20
    max_attempts: int = 10
    base_backoff_s: float = 5.0
    max_backoff_s: float = 3600.0
    timeout_s: float = 10.0
    poll_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.webhook_secret:
            raise ValueError("webhook_secret must not be empty: webhooks are always signed")
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

    @property
    def lease_s(self) -> float:
        """How long a claim keeps other dispatchers away: longer than any delivery can take."""
        return 2 * self.timeout_s + 5

    def backoff_s(self, attempts: int) -> float:
        """Delay before the next attempt after `attempts` failed ones: doubling, capped."""
        return float(min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, attempts - 1)))

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatcherConfig:
        """The dispatcher's configuration from the process's one Settings; refused without a signing key."""
        if settings.webhook_secret is None:
            raise ValueError("CX_WEBHOOK_SECRET is not set: the dispatcher signs every webhook with it")
        return cls(
            webhook_secret=settings.webhook_secret.get_secret_value(),
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_sender=settings.smtp_sender,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DispatcherConfig:
        """The same from a mapping of the variables (tests, tools): parsed by Settings' rules, nothing else read."""
        return cls.from_settings(Settings.from_env(environ))


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the value of X-CX-Signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(message: OutboxMessage) -> bytes:
    """The JSON posted to a webhook: the message's identity, topic and payload, canonically encoded."""
    envelope: dict[str, Any] = {
        "dedup_key": message.dedup_key,
        "topic": message.topic,
        "created_at": message.created_at.isoformat(),
        "payload": message.payload,
    }
    return encode_payload(envelope).encode()


def email_message_id(dedup_key: str, sender: str) -> str:
    """A Message-ID that is the same for every delivery of one dedup key, so mail clients drop repeats.

    The key is hashed because a Message-ID allows fewer characters than a dedup key may hold.
    """
    domain = sender.rpartition("@")[2] or "clusterxchange.invalid"
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:32]}.outbox@{domain}>"


def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    """A plain-text e-mail: `subject` and `text` from the payload when given, else the payload itself."""
    subject = message.payload.get("subject")
    text = message.payload.get("text")
    # No folding below the RFC 5322 limit: a Message-ID folded onto its own line confuses some receivers.
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = sender
    email["To"] = message.destination
    email["Subject"] = subject if isinstance(subject, str) else f"ClusterXchange {message.topic}"
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = email_message_id(message.dedup_key, sender)
    email["X-CX-Dedup-Key"] = message.dedup_key
    email.set_content(text if isinstance(text, str) else json.dumps(message.payload, indent=2, sort_keys=True))
    return email


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
RETURNING o.id, o.dedup_key, o.topic, o.channel, o.destination, o.payload, o.attempts, o.created_at
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

    def __init__(self, pool: asyncpg.Pool, config: DispatcherConfig) -> None:
        self._pool = pool
        self._config = config
        # Our own threads, one per message of a batch: the blocking clients (http.client, smtplib) must
        # not queue behind each other, or the queueing would eat into their timeout.
        self._executor = ThreadPoolExecutor(max_workers=config.batch_size, thread_name_prefix="cx-outbox")

    def close(self) -> None:
        """Release the delivery threads (waiting for any still running, each bounded by its timeout)."""
        self._executor.shutdown(wait=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; poll again at once while batches come back full."""
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # The database is away (restart, failover): keep the process and try again later; rows
                # stay in the outbox, so nothing is lost while we wait.
                log.warning("outbox_poll_failed", error=repr(error))
                claimed = 0
            if claimed < self._config.batch_size:
                # Waking on `stop` ends the loop at once; the timeout is the next poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._config.poll_interval_s)

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
        started = time.monotonic()
        error: str | None = None
        try:
            await self._deliver(message)
        except Exception as exc:  # noqa: BLE001 - recorded on the row, as said below
            # Deliberately broad: one message failing in any way (receiver down, a payload our renderer
            # cannot handle) must not stop the rest of the batch. The error is recorded on the row and
            # the row parks after max_attempts, so nothing fails silently.
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        duration_ms = round((time.monotonic() - started) * 1000)
        if error is None:
            await self._pool.execute(
                "UPDATE outbox SET delivered_at = now() WHERE id = $1 AND delivered_at IS NULL", message.id
            )
            outcome = "delivered"
        else:
            outcome = await self._record_failure(message, token, error)
        # One canonical line per delivery attempt.
        log.info(
            "outbox_delivery",
            outbox_id=message.id,
            dedup_key=message.dedup_key,
            topic=message.topic,
            channel=message.channel,
            attempt=message.attempts,
            outcome=outcome,
            duration_ms=duration_ms,
            error=error,
        )

    async def _record_failure(self, message: OutboxMessage, token: uuid.UUID, error: str) -> str:
        dead = message.attempts >= self._config.max_attempts
        # The claim token guards against a dispatcher whose lease expired overwriting a newer claim.
        status = await self._pool.execute(
            """UPDATE outbox
                  SET last_error = $3,
                      dead_at = CASE WHEN $4 THEN now() END,
                      next_attempt_at = CASE WHEN $4 THEN next_attempt_at ELSE now() + make_interval(secs => $5) END
                WHERE id = $1 AND claim_token = $2 AND delivered_at IS NULL AND dead_at IS NULL""",
            message.id,
            token,
            error,
            dead,
            self._config.backoff_s(message.attempts),
        )
        if status == "UPDATE 0":
            return "failed_claim_lost"
        return "dead" if dead else "retry_scheduled"

    async def _deliver(self, message: OutboxMessage) -> None:
        send = (
            partial(self._post_webhook, message) if message.channel == "webhook" else partial(self._send_email, message)
        )
        loop = asyncio.get_running_loop()
        # The clients' own timeouts apply per socket operation; this bounds the whole delivery.
        await asyncio.wait_for(loop.run_in_executor(self._executor, send), timeout=self._config.timeout_s)

    def _post_webhook(self, message: OutboxMessage) -> None:
        # http.client rather than urllib: urllib follows redirects and would turn a POST into a GET.
        url = urlsplit(message.destination)
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        body = webhook_body(message)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ClusterXchange-Outbox/1",
            "X-CX-Dedup-Key": message.dedup_key,
            "X-CX-Topic": message.topic,
            "X-CX-Timestamp": timestamp,
            "X-CX-Signature": webhook_signature(self._config.webhook_secret, timestamp, body),
        }
        path = url.path or "/"
        if url.query:
            path = f"{path}?{url.query}"
        connection = connection_class(url.hostname or "", url.port, timeout=self._config.timeout_s)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            snippet = response.read(MAX_RESPONSE_SNIPPET_BYTES).decode(errors="replace")
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise DeliveryFailed(f"HTTP {response.status} from {url.hostname}: {snippet}")

    def _send_email(self, message: OutboxMessage) -> None:
        email = build_email(message, self._config.smtp_sender)
        with smtplib.SMTP(self._config.smtp_host, self._config.smtp_port, timeout=self._config.timeout_s) as smtp:
            refused = smtp.send_message(email)
        if refused:
            raise DeliveryFailed(f"SMTP refused recipients: {refused}")
