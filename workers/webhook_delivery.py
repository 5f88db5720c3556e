"""Webhook delivery: one pooled httpx client per dispatcher, Standard Webhooks headers, short in-delivery retries.

Two layers of retry, on purpose (ADR 0019): within one delivery attempt, stamina retries what is very likely
to pass a moment later (a refused connection, 502/503/504 from a proxy in front of the receiver, 429 with a
short Retry-After), a few times within the attempt's time budget; between attempts the outbox keeps its own
long backoff (minutes to an hour) in Postgres. Any other non-2xx fails the attempt for the outbox to retry,
except a 4xx other than 408 and 429: the receiver refused this message for good (bad signature, unknown
order), so `PermanentRefusal` parks the row as dead at once instead of hammering it ten times.
Redirects are not followed: a 3xx is a failed attempt, never a POST turned into a GET.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import stamina

from activities.outbox import OutboxMessage, encode_payload
from workers.webhook_signing import signed_headers

MAX_RESPONSE_SNIPPET_CHARS = 200
# Statuses a proxy or an overloaded receiver sends when the very next try may pass.
RETRY_IN_DELIVERY_STATUSES = frozenset({502, 503, 504})
# 4xx that say "not now" rather than "never".
RETRY_LATER_CLIENT_STATUSES = frozenset({408, 429})


class DeliveryFailed(Exception):
    """The receiver did not accept the message this time (non-2xx, connection trouble); retried later."""

    def __init__(self, message: str, *, status: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class PermanentRefusal(Exception):
    """The receiver refused the message for good (4xx other than 408/429): the row is parked as dead at once."""


@dataclass(frozen=True)
class WebhookPolicy:
    """How one webhook attempt behaves: per-request timeout, in-delivery tries and their waits."""

    timeout_s: float
    retry_attempts: int
    retry_wait_initial_s: float
    retry_wait_max_s: float
    max_connections: int


def webhook_body(message: OutboxMessage) -> bytes:
    """The JSON posted to a webhook: the message's identity, topic and payload, canonically encoded."""
    envelope: dict[str, Any] = {
        "dedup_key": message.dedup_key,
        "topic": message.topic,
        "created_at": message.created_at.isoformat(),
        "payload": message.payload,
    }
    return encode_payload(envelope).encode()


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WebhookSender:
    """Posts outbox messages as signed webhooks over one pooled client; `aclose()` when done."""

    def __init__(self, signing_key: bytes, policy: WebhookPolicy) -> None:
        self._key = signing_key
        self._policy = policy
        self._client = httpx.AsyncClient(
            # Explicit per phase: connect, write, read of each chunk, and waiting for a pooled connection.
            timeout=httpx.Timeout(policy.timeout_s),
            limits=httpx.Limits(
                max_connections=policy.max_connections, max_keepalive_connections=policy.max_connections
            ),
            follow_redirects=False,
            headers={"User-Agent": "ClusterXchange-Outbox/2"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, message: OutboxMessage, traceparent: str | None) -> None:
        """Deliver once (with the short in-delivery retries); raise DeliveryFailed or PermanentRefusal."""
        body = webhook_body(message)
        policy = self._policy
        async for attempt in stamina.retry_context(
            on=self._retry_in_delivery,
            attempts=policy.retry_attempts,
            timeout=policy.timeout_s,
            wait_initial=policy.retry_wait_initial_s,
            wait_max=policy.retry_wait_max_s,
            wait_jitter=policy.retry_wait_initial_s,
        ):
            with attempt:
                await self._post_once(message, body, traceparent)

    def _retry_in_delivery(self, error: Exception) -> bool | float:
        """stamina's hook: True to retry with its backoff, a number of seconds to wait that long, False to stop."""
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # nothing reached the receiver: retrying cannot duplicate
        if not isinstance(error, DeliveryFailed):
            return False
        if error.status in RETRY_IN_DELIVERY_STATUSES:
            return True
        if error.status == 429 and error.retry_after_s is not None and error.retry_after_s <= self._policy.timeout_s:
            return error.retry_after_s
        # A longer Retry-After is honoured by the outbox's next attempt instead (Dispatcher._record_failure).
        return False

    async def _post_once(self, message: OutboxMessage, body: bytes, traceparent: str | None) -> None:
        # A fresh timestamp and signature on every try, the same webhook-id: the receiver deduplicates on it.
        headers = {
            "Content-Type": "application/json",
            **signed_headers(self._key, message.dedup_key, int(time.time()), body),
            # Kept from the first scheme (ADR 0007) for receivers that deduplicate on it; equal to webhook-id.
            "X-CX-Dedup-Key": message.dedup_key,
            "X-CX-Topic": message.topic,
        }
        if traceparent is not None:
            headers["traceparent"] = traceparent
        response = await self._client.post(message.destination, content=body, headers=headers)
        status = response.status_code
        if 200 <= status < 300:
            return
        host = response.request.url.host
        snippet = response.text[:MAX_RESPONSE_SNIPPET_CHARS]
        if 400 <= status < 500 and status not in RETRY_LATER_CLIENT_STATUSES:
            raise PermanentRefusal(f"HTTP {status} from {host} (refused for good): {snippet}")
        raise DeliveryFailed(
            f"HTTP {status} from {host}: {snippet}",
            status=status,
            retry_after_s=retry_after_s(response.headers.get("Retry-After")) if status == 429 else None,
        )
