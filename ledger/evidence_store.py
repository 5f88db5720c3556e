"""REPORTING: where evidence bytes live, behind one interface (docs/adr/0020-evidence-beyond-one-disk.md).

- `EvidenceStore` is what the rest of the engine sees: `put(data) -> sha256`, `get(sha256) -> bytes` and
  `exists(sha256)`, all async. The bytes are addressed by their SHA-256, so a put is idempotent (the same
  bytes are stored once, whoever uploads them) and a get checks what comes back against the address:
  a stored copy that is missing or damaged raises `EvidenceUnreadable`, never returns wrong bytes.
- `FileEvidenceStore` keeps them on one machine's disk under `<root>/<sha256[:2]>/<sha256>` (the default,
  `CX_EVIDENCE_DIR`): written atomically (a temporary file in the same directory, fsynced, then renamed,
  the directory fsynced), so a reader never sees half a file and a crash never loses a rename.
- `S3EvidenceStore` (ledger/evidence_s3.py) keeps them in S3-compatible object storage
  (`CX_EVIDENCE_STORE=s3://bucket/prefix`), for processes on more than one machine.

This module imports nothing beyond the standard library: the Exchange workflow's sandbox reaches it through
activities/reporting.py, and the object-storage client stays out of there.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

_HEX = frozenset("0123456789abcdef")


class EvidenceUnreadable(Exception):
    """The stored copy of a file cannot be given back as it was uploaded."""

    def __init__(self, sha256: str, problem: str) -> None:
        self.sha256 = sha256
        self.problem = problem
        super().__init__(f"evidence {sha256}: {problem}")


class EvidenceNotStored(EvidenceUnreadable):
    """No copy is stored under the address (never uploaded here, lost, or another store configured)."""

    def __init__(self, sha256: str) -> None:
        super().__init__(sha256, "not in the store")


class EvidenceDamaged(EvidenceUnreadable):
    """The stored copy does not hash to its address: a disk or storage fault, or a change by hand."""

    def __init__(self, sha256: str, found: str) -> None:
        self.found = found
        super().__init__(sha256, f"the stored copy hashes to {found}, not to its address")


class EvidenceStoreUnavailable(OSError):
    """The store did not answer as it should (unreachable, refused our credentials, a server error after the
    retries): the engine's trouble, not the uploader's. An OSError, so the API answers 503 and an activity
    is retried, as for a database that does not answer."""


class EvidenceStore(Protocol):
    """Evidence bytes addressed by their SHA-256 (lowercase hex)."""

    async def put(self, data: bytes) -> str:
        """Store `data` durably (once) and return its SHA-256; a damaged copy at the address is replaced."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The stored bytes, checked to hash to `sha256`; raises EvidenceNotStored or EvidenceDamaged."""
        ...

    async def exists(self, sha256: str) -> bool:
        """Whether a copy is stored under `sha256` (not read, so not checked)."""
        ...


def sha256_of(data: bytes) -> str:
    """The address of `data` in any store."""
    return hashlib.sha256(data).hexdigest()


def checked_address(sha256: str) -> str:
    """`sha256` if it is a lowercase hex SHA-256, else ValueError.

    The digest is the only thing that becomes a path or an object key, and it is checked first, so no
    uploader-supplied text can ever reach the file system or the bucket.
    """
    if len(sha256) != 64 or not _HEX.issuperset(sha256):
        raise ValueError(f"sha256 {sha256!r}: not a lowercase hex SHA-256")
    return sha256


def intact(sha256: str, data: bytes) -> bytes:
    """`data` if it hashes to `sha256`, else EvidenceDamaged."""
    found = sha256_of(data)
    if found != sha256:
        raise EvidenceDamaged(sha256, found)
    return data


class FileEvidenceStore:
    """Evidence bytes on one machine's disk: `<root>/<sha256[:2]>/<sha256>`.

    The two-character fan-out keeps any one directory small. The file system calls run in a thread, off
    the event loop (a file is up to 10 MiB and is hashed whole).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"FileEvidenceStore({str(self.root)!r})"

    def path_for(self, sha256: str) -> Path:
        checked_address(sha256)
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self._put, data)

    async def get(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self._get, sha256)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path_for(sha256).is_file)

    def _get(self, sha256: str) -> bytes:
        try:
            data = self.path_for(sha256).read_bytes()
        except FileNotFoundError:
            raise EvidenceNotStored(sha256) from None
        return intact(sha256, data)

    def _put(self, data: bytes) -> str:
        sha256 = sha256_of(data)
        target = self.path_for(sha256)
        if target.is_file() and sha256_of(target.read_bytes()) == sha256:
            return sha256
        # A copy that does not hash to its name (a disk error, an interrupted copy by hand) is replaced.
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            # Same directory, so the rename is atomic: readers see the old state or the whole file.
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        return sha256


def _fsync_directory(directory: Path) -> None:
    # Without this the rename itself may be lost in a crash, leaving a row that points at nothing.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
