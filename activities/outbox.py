"""PAYMENT (and notifications): the transactional outbox, written inside the caller's transaction.

`enqueue` adds a message to the `outbox` table on the connection of a transaction that is already
open (for a payment order, the one that posts the hold), so the message exists if and only if that
transaction commits: emitted exactly once whatever crashes. Delivery happens later, at least once,
in workers/dispatcher.py; the dedup key travels with every delivery so receivers can drop repeats.
See docs/adr/0007-outbox.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from ledger.store import DbConnection

OutboxTopic = Literal["payment_order", "notification"]
OutboxChannel = Literal["webhook", "email"]

MAX_DEDUP_KEY_CHARS = 200
MAX_DESTINATION_CHARS = 2000
MAX_PAYLOAD_BYTES = 64 * 1024


def payment_order_dedup_key(application_id: str) -> str:
    """The one dedup key of an exchange's payment order: a business id, stable across retries."""
    return f"payment-order:{application_id}"


class OutboxConflict(RuntimeError):
    """A dedup key already names a different message (another topic, channel or destination).

    Reusing a key for another message would silently drop the second one, so it is refused loudly.
    """


class NewOutboxMessage(BaseModel):
    """What `enqueue` writes; validated before it reaches the database."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dedup_key: str = Field(min_length=1, max_length=MAX_DEDUP_KEY_CHARS)
    topic: OutboxTopic
    channel: OutboxChannel
    destination: str = Field(min_length=1, max_length=MAX_DESTINATION_CHARS)
    payload: dict[str, JsonValue]

    @model_validator(mode="after")
    def _check(self) -> NewOutboxMessage:
        # Keys and addresses end up in HTTP and SMTP headers: a line break would let data forge headers.
        for name, value in (("dedup_key", self.dedup_key), ("destination", self.destination)):
            if any(c in value for c in "\r\n\0") or value != value.strip():
                raise ValueError(f"{name} must be a single line without surrounding spaces")
        if self.channel == "webhook":
            parts = urlsplit(self.destination)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook destination must be an http(s) URL, got {self.destination!r}")
        else:
            local, at, domain = self.destination.rpartition("@")
            if not at or not local or "." not in domain or " " in self.destination:
                raise ValueError(f"email destination must be an address, got {self.destination!r}")
        if len(encode_payload(self.payload)) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        return self


class OutboxMessage(BaseModel):
    """A pending message as a dispatcher claims it (`attempts` already counts this attempt)."""

    model_config = ConfigDict(frozen=True)

    id: int
    dedup_key: str
    topic: OutboxTopic
    channel: OutboxChannel
    destination: str
    payload: dict[str, JsonValue]
    attempts: int
    created_at: datetime
    # The W3C traceparent of the span that enqueued it (migration 0012), None without a tracer.
    trace_context: str | None = None


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current OpenTelemetry span, or None when there is no recording one.

    Only the OpenTelemetry API is used here: with no tracer provider configured (tests, `make run` without
    tracing) the current span is invalid and nothing is injected, so the outbox row gets NULL.
    """
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def encode_payload(payload: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces): the same payload always gives the same bytes."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def enqueue(
    conn: DbConnection,
    *,
    dedup_key: str,
    topic: OutboxTopic,
    channel: OutboxChannel,
    destination: str,
    payload: dict[str, Any],
) -> int:
    """Add a message to the outbox in the caller's open transaction; return its id.

    Idempotent on `dedup_key`: if the key is already there (a retried activity after a commit), the
    existing row's id is returned and nothing is written; the first payload wins. A key already used
    for another topic, channel or destination raises `OutboxConflict`. The current span's traceparent
    is stored with the row, so the delivery continues the trace that caused the message.
    """
    message = NewOutboxMessage(
        dedup_key=dedup_key, topic=topic, channel=channel, destination=destination, payload=payload
    )
    inserted: int | None = await conn.fetchval(
        """INSERT INTO outbox (dedup_key, topic, channel, destination, payload, trace_context)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)
           ON CONFLICT (dedup_key) DO NOTHING
           RETURNING id""",
        message.dedup_key,
        message.topic,
        message.channel,
        message.destination,
        encode_payload(message.payload),
        current_traceparent(),
    )
    if inserted is not None:
        return inserted
    # ON CONFLICT waited for any concurrent writer of this key to commit, so the row is visible now.
    existing = await conn.fetchrow(
        "SELECT id, topic, channel, destination FROM outbox WHERE dedup_key = $1", message.dedup_key
    )
    if existing is None:  # pragma: no cover - impossible unless the row was deleted in between
        raise OutboxConflict(f"outbox row {message.dedup_key!r} vanished between insert and read")
    if (existing["topic"], existing["channel"], existing["destination"]) != (
        message.topic,
        message.channel,
        message.destination,
    ):
        raise OutboxConflict(
            f"dedup key {message.dedup_key!r} already names a {existing['topic']} {existing['channel']} "
            f"message to {existing['destination']!r}"
        )
    existing_id: int = existing["id"]
    return existing_id
