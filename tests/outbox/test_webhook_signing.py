"""Standard Webhooks signatures (workers/webhook_signing.py): the specification's published test vector, the raw
secret kept from the first scheme, and a receiver's checks (signature, replay window, rotation)."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest

from workers.webhook_signing import WebhookVerificationError, sign, signed_headers, signing_key, verify

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_HEADERS = {
    "webhook-id": VECTOR_ID,
    "webhook-timestamp": str(VECTOR_TIMESTAMP),
    "webhook-signature": VECTOR_SIGNATURE,
}


def test_signature_matches_the_specifications_test_vector() -> None:
    """Our signer reproduces the reference implementations' signature exactly, and our verifier accepts it."""
    key = signing_key(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify(key, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10) == VECTOR_ID


def test_a_raw_secret_is_its_bytes_and_equals_the_whsec_form_of_them() -> None:
    """CX_WEBHOOK_SECRET keeps its meaning: a raw secret keys with its UTF-8 bytes, the same key as whsec_ + base64."""
    raw = "s3cret-of-the-first-scheme"
    assert signing_key(raw) == raw.encode()
    assert signing_key("whsec_" + base64.b64encode(raw.encode()).decode()) == raw.encode()
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_***")
    with pytest.raises(ValueError, match="empty"):
        signing_key("")


def test_verify_refuses_a_tampered_body_a_wrong_key_and_missing_headers() -> None:
    """A body changed in transit, another key, or a header missing is refused, each saying why."""
    key = signing_key("k1")
    headers = signed_headers(key, "payment-order:a", 1_700_000_000, b'{"amount_cents":1}')
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(key, headers, b'{"amount_cents":2}', now=1_700_000_000)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(signing_key("k2"), headers, b'{"amount_cents":1}', now=1_700_000_000)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(key, {k: v for k, v in headers.items() if k != "webhook-id"}, b'{"amount_cents":1}', now=1_700_000_000)


@pytest.mark.parametrize(("offset_s", "accepted"), [(-301, False), (-300, True), (0, True), (300, True), (301, False)])
def test_replay_window_is_five_minutes_either_way(offset_s: int, accepted: bool) -> None:
    """A timestamp more than 5 minutes old (a replay) or ahead (a forged future) is refused; within, accepted."""
    key = signing_key("k")
    sent_at = 1_700_000_000
    headers = signed_headers(key, "id-1", sent_at, b"{}")
    now = sent_at - offset_s
    if accepted:
        assert verify(key, headers, b"{}", now=now) == "id-1"
    else:
        with pytest.raises(WebhookVerificationError, match="replay window"):
            verify(key, headers, b"{}", now=now)


def test_one_valid_signature_among_several_suffices_for_key_rotation() -> None:
    """During a rotation a sender lists several space-separated signatures; one matching is enough."""
    key = signing_key("new-key")
    headers = signed_headers(key, "id-2", 1_700_000_000, b"{}")
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'old').decode()} {headers['webhook-signature']}"
    assert verify(key, headers, b"{}", now=1_700_000_000) == "id-2"


def test_the_contracts_verification_snippet_works() -> None:
    """The snippet docs/contract.md gives finance's implementers accepts our signatures and the spec's vector,
    and refuses a tampered body and a stale timestamp."""
    contract = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    [snippet] = re.findall(r"```python\n(import [^`]*?def verify_cx_webhook.*?)```", contract, re.S)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation's code, the point of the test
    verify_cx_webhook = namespace["verify_cx_webhook"]
    vector = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert verify_cx_webhook(VECTOR_SECRET, vector, VECTOR_BODY, tolerance_s=10**10) == VECTOR_ID
    raw_secret = "a-raw-secret"
    fresh = signed_headers(signing_key(raw_secret), "payment-order:x", int(time.time()), b"{}")
    assert verify_cx_webhook(raw_secret, fresh, b"{}") == "payment-order:x"
    with pytest.raises(ValueError, match="bad signature"):
        verify_cx_webhook(raw_secret, fresh, b"{ }")
    stale = signed_headers(signing_key(raw_secret), "payment-order:x", int(time.time()) - 301, b"{}")
    with pytest.raises(ValueError, match="replay window"):
        verify_cx_webhook(raw_secret, stale, b"{}")
