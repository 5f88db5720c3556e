"""The S3 evidence store against a real S3 API server (moto, started locally): round trip, a put that is
idempotent and stores once, a tampered object refused on read and repaired by the next put, and an
unreachable server named as such within the store's bounds."""

from __future__ import annotations

import hashlib
import time

import pytest

from ledger.evidence_s3 import RETRY_TIMEOUT, S3EvidenceStore
from ledger.evidence_store import EvidenceDamaged, EvidenceNotStored, EvidenceStoreUnavailable
from tests.evidence_s3.conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Bucket
from tests.reporting.documents import pdf
from tests.reporting.test_store import unique_tag
from workers.devstack import free_port


async def test_a_put_is_read_back_as_it_was_and_exists(bucket: Bucket) -> None:
    """put returns the SHA-256, the object sits at `<prefix>/<sha256>` with those bytes, get returns them."""
    store = bucket.store()
    data = pdf(unique_tag())
    digest = hashlib.sha256(data).hexdigest()
    assert not await store.exists(digest)
    with pytest.raises(EvidenceNotStored):
        await store.get(digest)

    assert await store.put(data) == digest

    assert await store.exists(digest)
    assert await store.get(digest) == data
    assert bucket.object_bytes(digest) == data, "keyed by SHA-256 under the prefix"


async def test_the_same_bytes_put_twice_are_stored_once(bucket: Bucket) -> None:
    """A second put of the same bytes (a re-upload, a retry after a lost answer) writes no new version:
    If-None-Match refuses the overwrite and the intact copy is kept."""
    store = bucket.store()
    data = pdf(unique_tag())
    first = await store.put(data)
    version = bucket.version_of(first)
    assert version is not None, "the bucket is versioned"
    again = await store.put(data)
    assert again == first
    assert bucket.version_of(first) == version, "no second write"


async def test_a_tampered_object_is_refused_on_read_and_repaired_by_a_put(bucket: Bucket) -> None:
    """An object changed behind the engine's back is never returned as evidence; uploading the same bytes
    again writes an intact copy over it (the damaged one stays as an older version)."""
    store = bucket.store()
    data = pdf(unique_tag())
    digest = await store.put(data)
    bucket.overwrite(digest, b"%PDF-1.4 not what was uploaded")
    damaged = bucket.version_of(digest)

    with pytest.raises(EvidenceDamaged, match="hashes to"):
        await store.get(digest)

    assert await store.put(data) == digest
    assert await store.get(digest) == data
    assert bucket.version_of(digest) != damaged, "a new version over the damaged one"


async def test_an_address_that_is_not_a_sha256_never_becomes_a_key(bucket: Bucket) -> None:
    """Only a lowercase hex SHA-256 reaches the bucket: no other text can name an object."""
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        await bucket.store().get("../other-prefix/" + "a" * 48)


async def test_an_unreachable_server_is_named_within_the_stores_bounds() -> None:
    """Nothing listening at the endpoint: EvidenceStoreUnavailable (an OSError: 503, retried), not a hang."""
    store = S3EvidenceStore(
        "cx-nowhere",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    started = time.monotonic()
    with pytest.raises(EvidenceStoreUnavailable, match="s3://cx-nowhere"):
        await store.put(b"anything")
    assert time.monotonic() - started < RETRY_TIMEOUT.total_seconds() + 5
