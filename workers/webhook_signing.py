"""Webhook signatures per the Standard Webhooks specification (https://www.standardwebhooks.com/).

Every webhook carries three headers: `webhook-id` (the outbox message's dedup key, the same on every
redelivery), `webhook-timestamp` (Unix seconds at sending) and `webhook-signature`, `v1,<base64 of
HMAC-SHA256 over "<id>.<timestamp>.<body>">` (several space-separated signatures may be sent during a key
rotation; one valid one suffices). The key is CX_WEBHOOK_SECRET: a `whsec_<base64>` secret is decoded as
the specification says, and any other value is used as its UTF-8 bytes, which is what a receiver with a
Standard Webhooks library gets by passing `whsec_` + base64(secret). The few lines are ours rather than
the `standardwebhooks` package's: they are checked against the specification's published test vector
(tests/outbox/test_webhook_signing.py). docs/contract.md shows receivers how to verify; ADR 0019.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_VERSION = "v1"
# A receiver refuses a timestamp further than this from its own clock, either way (the replay window).
DEFAULT_TOLERANCE_S = 5 * 60


class WebhookVerificationError(ValueError):
    """A webhook is not proven to come from us, now: a header is missing, no signature matches, or the
    timestamp is outside the replay window. The message says which."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, any other (raw) secret as its UTF-8 bytes."""
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ webhook secret must be base64 after its prefix") from None
        if not key:
            raise ValueError("a whsec_ webhook secret must not be empty after its prefix")
        return key
    return secret.encode()


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
    }


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str:
    """Check a received webhook as a receiver must; return its `webhook-id` (to deduplicate on).

    `headers` are looked up by lower-case name. Raises WebhookVerificationError when a header is missing,
    the timestamp is more than `tolerance_s` from `now` (too old: a replay; too new: a clock far off or a
    forged future timestamp), or no `v1` signature matches (compared in constant time).
    """
    webhook_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (webhook_id and raw_timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not raw_timestamp.isdigit():
        raise WebhookVerificationError(f"webhook-timestamp {raw_timestamp!r} is not Unix seconds")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp} is outside the {tolerance_s:.0f} s replay window around {now:.0f}"
        )
    expected = sign(key, webhook_id, timestamp, body).encode()
    for candidate in signatures.split(" "):
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise WebhookVerificationError("no webhook-signature matches the body")
