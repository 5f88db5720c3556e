"""REPORTING: evidence bytes in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...).

`CX_EVIDENCE_STORE=s3://bucket/prefix` (workers/evidence_store.py builds it from the Settings). The client
is obstore (docs/adr/0020-evidence-beyond-one-disk.md says why): async, typed, one wheel without dependencies.

- An object's key is `<prefix>/<sha256>`; the address is checked to be hex before it becomes a key.
- A put sends `x-amz-checksum-sha256` (the server refuses a body that does not hash to it: a corrupt
  upload is never stored) and `If-None-Match: *` (the server refuses to overwrite: the first copy stays).
  When the key exists already the copy there is read and checked; only a damaged one is overwritten (with
  bucket versioning on, the damaged version is kept as well).
- A get hashes what comes back and refuses a copy that does not match its key (`EvidenceDamaged`).
- Every call is bounded: a connect timeout, a request timeout and a few retries within a total limit, so
  an activity or a request never waits on an unreachable bucket longer than its own timeout allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError
from obstore.store import S3Store

from ledger.evidence_store import (
    EvidenceNotStored,
    EvidenceStoreUnavailable,
    EvidenceUnreadable,
    checked_address,
    intact,
    sha256_of,
)
from rules.evidence import MAX_EVIDENCE_SIZE_BYTES

if TYPE_CHECKING:
    from obstore.store import S3Config

# Bounds of one call (TIGER_STYLE): a file is at most 10 MiB, which takes seconds on any link; the retries
# of transient failures (5xx, a reset connection) stop after RETRY_TIMEOUT whatever their count.
CONNECT_TIMEOUT = timedelta(seconds=5)
REQUEST_TIMEOUT = timedelta(seconds=30)
RETRY_TIMEOUT = timedelta(seconds=30)
MAX_RETRIES = 3


@contextmanager
def _answering(bucket: str) -> Iterator[None]:
    # The client's other errors (unreachable, denied, a server error after the retries) become one the
    # callers know: the API answers 503, `cx evidence` exits UNAVAILABLE, an activity is retried.
    try:
        yield
    except (AlreadyExistsError, FileNotFoundError):
        raise
    except BaseError as error:
        raise EvidenceStoreUnavailable(f"s3://{bucket}: {str(error).splitlines()[0]}") from error


class S3EvidenceStore:
    """Evidence bytes as objects `<prefix>/<sha256>` of one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        """Without keys, the AWS default chain applies (the AWS_* variables the process was given, web
        identity, the container's or the instance's role), as the client library implements it."""
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config: S3Config = {"checksum_algorithm": "sha256", "conditional_put": "etag"}
        if endpoint_url is not None:
            config["endpoint"] = endpoint_url
        if region is not None:
            config["region"] = region
        if access_key_id is not None and secret_access_key is not None:
            config["access_key_id"] = access_key_id
            config["secret_access_key"] = secret_access_key
        self._store = S3Store(
            bucket,
            prefix=self.prefix or None,
            config=config,
            client_options={
                # Plain HTTP only when the endpoint says so (a local MinIO or test server).
                "allow_http": endpoint_url is not None and endpoint_url.startswith("http://"),
                "connect_timeout": CONNECT_TIMEOUT,
                "timeout": REQUEST_TIMEOUT,
            },
            retry_config={"max_retries": MAX_RETRIES, "retry_timeout": RETRY_TIMEOUT},
        )

    def __repr__(self) -> str:
        return f"S3EvidenceStore('s3://{self.bucket}/{self.prefix}')"

    def key_for(self, sha256: str) -> str:
        """The object's key under the prefix (the prefix is added by the client)."""
        return checked_address(sha256)

    async def put(self, data: bytes) -> str:
        sha256 = sha256_of(data)
        key = self.key_for(sha256)
        try:
            with _answering(self.bucket):
                await obstore.put_async(self._store, key, data, mode="create")
        except AlreadyExistsError:
            # Stored before (the same bytes uploaded again, or a retry after a lost answer): keep that
            # copy if it is intact; replace it only if it is damaged.
            try:
                await self.get(sha256)
            except EvidenceUnreadable:
                with _answering(self.bucket):
                    await obstore.put_async(self._store, key, data, mode="overwrite")
        return sha256

    async def get(self, sha256: str) -> bytes:
        key = self.key_for(sha256)
        try:
            with _answering(self.bucket):
                result = await obstore.get_async(self._store, key)
                size = result.meta["size"]
                if size > MAX_EVIDENCE_SIZE_BYTES:
                    # Never one of ours (uploads are refused above the limit): not read into memory.
                    raise EvidenceUnreadable(sha256, f"the stored object is {size} bytes, above any evidence file")
                data = bytes(await result.bytes_async())
        except FileNotFoundError:
            raise EvidenceNotStored(sha256) from None
        return intact(sha256, data)

    async def exists(self, sha256: str) -> bool:
        try:
            with _answering(self.bucket):
                await obstore.head_async(self._store, self.key_for(sha256))
        except FileNotFoundError:
            return False
        return True
