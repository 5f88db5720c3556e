"""Payload encryption: every payload the engine sends through Temporal is AES-256-GCM ciphertext (issue 16, item 1).

Temporal's server, its database and its Web UI see workflow and activity payloads (travellers' names,
organisations, contact details) exactly as the SDK hands them over. This codec, applied by the data
converter of every client and worker (schemas/converter.py `data_converter`), turns each payload into
ciphertext before it leaves the process and back after it arrives; people who may read histories decode
them through the API's codec server (clients/api/routers/codec.py, `temporal --codec-endpoint`).

The format, which other services' codecs (Go, TypeScript, Java) must reproduce byte for byte
(docs/contract.md, "Payload encryption"; docs/adr/0022-payload-encryption.md):

- the plaintext is the whole original `temporal.api.common.v1.Payload`, serialized as protobuf, so its
  metadata (`encoding`, `messageType`, ...) comes back exactly as it went in;
- `data` = nonce (12 random bytes, new for every payload) || AES-256-GCM ciphertext || 16-byte tag;
- the associated data is the key id in UTF-8, so a ciphertext cannot be relabelled with another key's id;
- the encrypted payload's metadata is `encoding: binary/encrypted` and `encryption-key-id: <key id>`.

Keys rotate (CX_PAYLOAD_KEYS, CX_PAYLOAD_KEY_ID): the current key encrypts, every listed key decrypts, so a
history written under an old key stays readable while that key is listed. A payload without the encrypted
encoding (a history recorded before encryption, a plain JSON input from a service not yet encrypting) is
passed through unchanged, which keeps old histories replayable.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per payload: 2^32 payloads per key keep collisions negligible
KEY_BYTES = 32  # AES-256
KEYS_VARIABLE = "CX_PAYLOAD_KEYS"
KEY_ID_VARIABLE = "CX_PAYLOAD_KEY_ID"
# Key ids travel in every payload's metadata and in log lines: short, printable, never secret.
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHAPE = '{"<id>": "<base64 of 32 bytes>"}'
MAX_KEYS = 100  # a limit on everything: rotation keeps a handful, never hundreds


class PayloadKeyError(ValueError):
    """CX_PAYLOAD_KEYS or CX_PAYLOAD_KEY_ID is malformed; the message names the variable, never a key."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: an unknown key id, or data that fails authentication."""


@dataclass(frozen=True)
class PayloadKeys:
    """The keys that decrypt (by id) and the id of the one that encrypts. Never printed: `repr` hides the keys."""

    keys: Mapping[str, bytes] = field(repr=False)
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise PayloadKeyError(f"{KEY_ID_VARIABLE}={self.current!r}: no key of that id in {KEYS_VARIABLE}")
        for key_id, key in self.keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise PayloadKeyError(f"{KEYS_VARIABLE}: key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"{KEYS_VARIABLE}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} (base64 of them)"
                )

    @staticmethod
    def generate(key_id: str = "local-1") -> PayloadKeys:
        """A fresh random key (the local stack's, `make run`; tests)."""
        return PayloadKeys({key_id: AESGCM.generate_key(bit_length=KEY_BYTES * 8)}, key_id)

    def to_config(self) -> str:
        """The keys in CX_PAYLOAD_KEYS's JSON form (`{"<id>": "<base64>"}`), for a file or a child process."""
        return json.dumps({key_id: base64.b64encode(key).decode() for key_id, key in self.keys.items()})


def parse_payload_keys(raw: str, current: str | None) -> PayloadKeys:
    """The keys of CX_PAYLOAD_KEYS (JSON `{"id": "base64"}` or `id:base64,id:base64`) with CX_PAYLOAD_KEY_ID.

    CX_PAYLOAD_KEY_ID may be left out when there is exactly one key. Raises PayloadKeyError naming the
    variable and the rule; the message never contains key material.
    """
    entries = _entries(raw.strip())
    if not entries:
        raise PayloadKeyError(f"{KEYS_VARIABLE}: no key given (JSON {_SHAPE} or id:base64,id:base64)")
    if len(entries) > MAX_KEYS:
        raise PayloadKeyError(f"{KEYS_VARIABLE}: {len(entries)} keys; at most {MAX_KEYS}")
    keys: dict[str, bytes] = {}
    for key_id, encoded in entries:
        if key_id in keys:
            raise PayloadKeyError(f"{KEYS_VARIABLE}: key id {key_id!r} given twice")
        try:
            keys[key_id] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadKeyError(f"{KEYS_VARIABLE}: key {key_id!r} is not base64") from None
    if current is None:
        if len(keys) != 1:
            raise PayloadKeyError(f"{KEY_ID_VARIABLE}: required with more than one key in {KEYS_VARIABLE}")
        current = next(iter(keys))
    return PayloadKeys(keys, current)


def _entries(raw: str) -> list[tuple[str, str]]:
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise PayloadKeyError(f"{KEYS_VARIABLE}: not valid JSON") from None  # the error would quote the key
        if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
            raise PayloadKeyError(f"{KEYS_VARIABLE}: JSON must be an object of key id to base64 key")
        return list(data.items())
    entries = []
    for item in raw.split(","):
        key_id, colon, encoded = item.strip().partition(":")
        if not colon:
            raise PayloadKeyError(f"{KEYS_VARIABLE}: each entry must be id:base64key (comma-separated)")
        entries.append((key_id, encoded))
    return entries


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload, keyed by id (temporalio/samples-python `encryption/`)."""

    def __init__(self, keys: PayloadKeys) -> None:
        super().__init__()
        self._current = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """Every key id this codec decrypts (the key material itself never leaves it)."""
        return frozenset(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one without the encrypted encoding is returned as it is (plaintext history)."""
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not in {KEYS_VARIABLE} "
                f"(known: {', '.join(sorted(self._ciphers))})"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, sealed, key_id.encode()))
        except (InvalidTag, DecodeError, ValueError):
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} fails authentication (altered, truncated or another key's)"
            ) from None
