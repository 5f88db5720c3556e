"""A data key per person: personal text sealed under it, erased by destroying it (crypto-shredding).

Issue 16, item 2 (docs/adr/0025-erasure-by-crypto-shredding.md). Whoever the engine records by an actor id
(an applicant's handle or address, a reviewer, an officer, finance staff) is a person with an opaque
reference `psn_<uuid>` and one random 256-bit data key. Free text a person writes (a review's comment, a
reason, an application's goals) and a reviewer's name are stored *sealed*:

    cx1:<person ref>:<base64 of nonce || AES-256-GCM ciphertext || tag>

with the ref as associated data, so a sealed value cannot be passed off as another person's.
The data key itself is stored in `person_keys` wrapped (AES-256-GCM) under a key-encryption key derived from
the programme's payload keys (HKDF-SHA256, info `cx person kek`: the keys deployments already keep in their
secret store, rotation included: ADR 0022); a dump of the database alone opens nothing. Erasure
(ledger/erasure.py) sets the wrapped key to NULL: every sealed copy of that person's text, in every table
and every backup taken since, reads as ERASED from then on.

`person_identifiers` finds a person's ref from an actor id by HMAC-SHA256 under a key derived the same way,
so the lookup table names nobody; erasure deletes the person's rows there, after which the ref cannot be
linked back to the id.

A process installs the keyring once at start (`install`, from Settings: workers/runtime.py); without one
(a deployment that configures no payload keys) text is stored as it is and erasure overwrites it instead
(the weaker, documented mode). Reading (`reveal`) opens every sealed string of a value, at any depth.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger.store import DbConnection

ERASED = "erased"  # what a sealed value of an erased person reads as, everywhere
SEAL_PREFIX = "cx1:"
_SEALED = re.compile(r"cx1:(psn_[0-9a-f]{32}):([A-Za-z0-9+/=]+)")
_NONCE = 12
_DATA_KEY = 32
V = TypeVar("V")


@dataclass(frozen=True)
class PersonKeyring:
    """Key-encryption keys by id (the current one wraps new data keys) and the identifiers' HMAC keys.

    Derived from the payload keys, so rotation is theirs: every listed key unwraps, the current one wraps.
    An identifier is looked up under every key's HMAC, so a person found before a rotation is found after.
    """

    keks: Mapping[str, bytes] = field(repr=False)
    hmac_keys: Mapping[str, bytes] = field(repr=False)
    current: str

    @staticmethod
    def derive(keys: Mapping[str, bytes], current: str) -> PersonKeyring:
        return PersonKeyring(
            keks={key_id: _hkdf(key, b"cx person kek") for key_id, key in keys.items()},
            hmac_keys={key_id: _hkdf(key, b"cx person identifier") for key_id, key in keys.items()},
            current=current,
        )

    def identifier_digests(self, identifier: str) -> list[bytes]:
        """The identifier's HMAC under the current key first, then under every other listed key."""
        order = [self.current, *(k for k in self.hmac_keys if k != self.current)]
        return [hmac.new(self.hmac_keys[k], identifier.encode(), hashlib.sha256).digest() for k in order]


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


_installed: list[PersonKeyring] = []


def install(keyring: PersonKeyring | None) -> None:
    """The process's keyring (None: personal text is stored unsealed). Called once at start, and by tests."""
    _installed.clear()
    if keyring is not None:
        _installed.append(keyring)


def installed() -> PersonKeyring | None:
    return _installed[0] if _installed else None


async def person_ref(conn: DbConnection, identifier: str) -> str:
    """The ref of the person known by `identifier`, created (with a fresh data key) on first sight.

    Safe under concurrency: two transactions that meet a new person at once agree on one ref (the
    identifier's digest is the primary key; the loser's insert does nothing and it reads the winner's)."""
    keyring = installed()
    digests = keyring.identifier_digests(identifier) if keyring else [_plain_digest(identifier)]
    ref = await conn.fetchval(
        "SELECT person_ref FROM person_identifiers WHERE identifier_hmac = ANY($1::bytea[]) LIMIT 1", digests
    )
    if ref is not None:
        return str(ref)
    candidate = f"psn_{uuid.uuid4().hex}"
    wrapped, key_id = _wrap_new_key(keyring, candidate)
    await conn.execute(
        """WITH person AS (INSERT INTO persons (person_ref) VALUES ($1) RETURNING person_ref)
           INSERT INTO person_keys (person_ref, key_id, wrapped_key) SELECT person_ref, $2, $3 FROM person""",
        candidate,
        key_id,
        wrapped,
    )
    await conn.execute(
        "INSERT INTO person_identifiers (identifier_hmac, person_ref) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        digests[0],
        candidate,
    )
    winner = await conn.fetchval("SELECT person_ref FROM person_identifiers WHERE identifier_hmac = $1", digests[0])
    return str(winner)


async def find_person(conn: DbConnection, identifier: str) -> str | None:
    """The ref of the person known by `identifier`, or None (never creates one)."""
    keyring = installed()
    digests = keyring.identifier_digests(identifier) if keyring else [_plain_digest(identifier)]
    ref = await conn.fetchval(
        "SELECT person_ref FROM person_identifiers WHERE identifier_hmac = ANY($1::bytea[]) LIMIT 1", digests
    )
    return None if ref is None else str(ref)


def _plain_digest(identifier: str) -> bytes:
    # Without a keyring the lookup still names nobody in clear, though a guess of the id can be checked.
    return hashlib.sha256(b"cx person identifier\0" + identifier.encode()).digest()


def _wrap_new_key(keyring: PersonKeyring | None, ref: str) -> tuple[bytes | None, str]:
    if keyring is None:
        return None, "none"
    nonce = os.urandom(_NONCE)
    data_key = AESGCM.generate_key(bit_length=256)
    return nonce + AESGCM(keyring.keks[keyring.current]).encrypt(nonce, data_key, ref.encode()), keyring.current


def _unwrap(keyring: PersonKeyring, ref: str, key_id: str, wrapped: bytes) -> bytes:
    kek = keyring.keks.get(key_id)
    if kek is None:
        raise PersonKeyError(f"person {ref}: its data key is wrapped under key {key_id!r}, which is not configured")
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], ref.encode())
    except InvalidTag:
        raise PersonKeyError(f"person {ref}: its data key fails authentication under key {key_id!r}") from None


class PersonKeyError(Exception):
    """A person's data key cannot be opened with the configured keys (a configuration error, not an erasure)."""


async def seal(conn: DbConnection, identifier: str, text: str) -> str:
    """`text` sealed under the data key of the person known by `identifier` (empty text stays empty).

    Without a keyring, or for the system's own actor, the text is returned as it is."""
    keyring = installed()
    if not text or keyring is None or text.startswith(SEAL_PREFIX):
        return text
    ref, data_key = await _person_key(conn, keyring, identifier)
    if data_key is None:  # erased: nothing new is stored under a destroyed key
        return ERASED
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(data_key).encrypt(nonce, text.encode(), ref.encode())
    return f"{SEAL_PREFIX}{ref}:{base64.b64encode(sealed).decode()}"


async def _person_key(conn: DbConnection, keyring: PersonKeyring, identifier: str) -> tuple[str, bytes | None]:
    """The person's ref and data key (None once destroyed): one round trip for a known person, which the
    projection's hot path meets on every event a person writes; a new one is created first."""
    row = await conn.fetchrow(
        """SELECT i.person_ref, k.key_id, k.wrapped_key FROM person_identifiers i JOIN person_keys k USING (person_ref)
            WHERE i.identifier_hmac = ANY($1::bytea[]) LIMIT 1""",
        keyring.identifier_digests(identifier),
    )
    if row is None:
        ref = await person_ref(conn, identifier)
        row = await conn.fetchrow("SELECT person_ref, key_id, wrapped_key FROM person_keys WHERE person_ref = $1", ref)
    assert row is not None, "person_ref creates the person's key with the person"
    wrapped = row["wrapped_key"]
    ref = str(row["person_ref"])
    return ref, None if wrapped is None else _unwrap(keyring, ref, row["key_id"], bytes(wrapped))


async def reveal(conn: DbConnection, value: V) -> V:
    """`value` with every sealed string in it opened (dicts, lists and tuples walked), ERASED for a person
    whose key was destroyed; anything else unchanged. One key lookup per person, however many values."""
    refs = set(_refs_in(value))
    if not refs:
        return value
    keyring = installed()
    keys: dict[str, bytes | None] = {}
    if keyring is not None:
        rows = await conn.fetch(
            "SELECT person_ref, key_id, wrapped_key FROM person_keys WHERE person_ref = ANY($1)", list(refs)
        )
        for row in rows:
            wrapped = row["wrapped_key"]
            keys[row["person_ref"]] = (
                None if wrapped is None else _unwrap(keyring, row["person_ref"], row["key_id"], bytes(wrapped))
            )
    return _open_in(value, keys)


def _refs_in(value: object) -> Iterable[str]:
    if isinstance(value, str):
        if value.startswith(SEAL_PREFIX) and (match := _SEALED.fullmatch(value)):
            yield match.group(1)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _refs_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _refs_in(item)


def _open_in(value: V, keys: Mapping[str, bytes | None]) -> V:
    if isinstance(value, str):
        return _open_one(value, keys)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        return {k: _open_in(v, keys) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [_open_in(v, keys) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(_open_in(v, keys) for v in value)  # type: ignore[return-value]
    return value


def _open_one(value: str, keys: Mapping[str, bytes | None]) -> str:
    match = _SEALED.fullmatch(value) if value.startswith(SEAL_PREFIX) else None
    if match is None:
        return value
    ref, body = match.groups()
    data_key = keys.get(ref)
    if data_key is None:
        return ERASED
    try:
        raw = base64.b64decode(body, validate=True)
        return AESGCM(data_key).decrypt(raw[:_NONCE], raw[_NONCE:], ref.encode()).decode()
    except (InvalidTag, binascii.Error, ValueError):
        raise PersonKeyError(f"person {ref}: a sealed value fails authentication") from None
