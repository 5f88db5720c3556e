"""REPORTING: evidence files of closing reports (boarding passes, invoices), stored by content and recorded.

- `EvidenceStore` keeps the bytes under `<root>/<sha256[:2]>/<sha256>`, written atomically (a temporary
  file in the same directory, fsynced, then renamed), so a reader never sees half a file and the same
  bytes are stored once whoever uploads them.
- `store_evidence` refuses an upload for an application that started no exchange (`ApplicationUnknown`),
  checks the file by the rules (rules/evidence.py), stores it, records it in `evidence_files` and returns
  the `EvidenceItem` to put in `submit_report`. Uploading the same bytes again returns the same record.
  Who may upload for which exchange is the caller's to decide (the REST API: its submitter, officers and
  services; `cx evidence`: the back office, docs/operations.md).
- `verify` compares a report's items with what was recorded; the Exchange workflow's `verify_evidence`
  activity (activities/reporting.py) runs it.

These functions take the caller's connection (a plain one for `cx evidence`, a pool's for the API and
the activities): the one way clients reach these rows (docs/adr/0014-one-way-imports.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ledger.store import DbConnection
from rules.evidence import DEFAULT_LIMITS, EvidenceLimits, EvidenceRefused, check_evidence, read_upload
from schemas.exchange import EvidenceItem
from schemas.ids import ActorId, ApplicationId
from schemas.reporting import EvidenceMismatch, VerifyEvidenceInput, VerifyEvidenceResult
from schemas.text import FileName

# A report has a handful of documents; this bound on a listing is far above that and only stops a
# runaway request (TIGER_STYLE).
MAX_EVIDENCE_LISTED = 1000

_APPLICATION_ID = TypeAdapter(ApplicationId)
_ACTOR_ID = TypeAdapter(ActorId)
_FILE_NAME = TypeAdapter(FileName)


class ApplicationUnknown(EvidenceRefused):
    """No exchange was started for the application: there is no report its evidence could belong to."""

    def __init__(self, application_id: str) -> None:
        self.application_id = application_id
        super().__init__(
            "application_id", f"{application_id!r}: no such exchange; evidence is uploaded for a started exchange"
        )


class EvidenceRecord(BaseModel):
    """One row of `evidence_files`: an uploaded evidence file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str
    application_id: str
    name: str
    kind: str
    media_type: str
    size_bytes: int
    stored_at: datetime
    uploaded_by: str

    def as_item(self) -> EvidenceItem:
        """The `EvidenceItem` that points at this file in `submit_report`."""
        return EvidenceItem.model_validate(
            {"name": self.name, "kind": self.kind, "sha256": self.sha256, "size_bytes": self.size_bytes}
        )


class _HasEvidenceDir(Protocol):
    """What the store needs of a configuration (the process's settings, or clients' config)."""

    @property
    def evidence_dir(self) -> Path: ...


class EvidenceStore:
    """Evidence bytes on disk, addressed by their SHA-256: `<root>/<sha256[:2]>/<sha256>`.

    The two-character fan-out keeps any one directory small. Methods are blocking; async callers run
    them in a thread (`store_evidence` does).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: _HasEvidenceDir) -> EvidenceStore:
        """The store at the configured directory (`CX_EVIDENCE_DIR`, else `<state_dir>/evidence`)."""
        return cls(settings.evidence_dir)

    def path_for(self, sha256: str) -> Path:
        # The digest is the only thing that becomes a path, and it is checked to be hex first, so no
        # uploader-supplied text can ever reach the file system.
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"sha256 {sha256!r}: not a lowercase hex SHA-256")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its SHA-256; an existing intact copy is left as it is."""
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path_for(sha256)
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
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


async def store_evidence(
    conn: DbConnection,
    store: EvidenceStore,
    *,
    application_id: str,
    path_or_bytes: Path | bytes,
    name: str,
    kind: str,
    uploaded_by: str,
    limits: EvidenceLimits = DEFAULT_LIMITS,
) -> EvidenceItem:
    """Check, store and record one evidence file; return the `EvidenceItem` for `submit_report`.

    Idempotent: the same bytes uploaded again (for the same application) return the first record as
    it is, first name and kind included, and are stored once. The same bytes for another application
    are refused (field `file`): a document is evidence of one exchange only.
    """
    try:
        application_id = _APPLICATION_ID.validate_python(application_id)
    except ValidationError:
        raise EvidenceRefused("application_id", f"{application_id!r} is not an application id") from None
    try:
        uploaded_by = _ACTOR_ID.validate_python(uploaded_by)
    except ValidationError:
        raise EvidenceRefused("uploaded_by", "one line of 1 to 128 characters, without control characters") from None
    if not await exchange_exists(conn, application_id):
        raise ApplicationUnknown(application_id)
    data = await asyncio.to_thread(read_upload, path_or_bytes, limits)
    # The checks parse and decode the whole file (up to 10 MiB): off the event loop.
    media_type = await asyncio.to_thread(check_evidence, data, name, kind, limits)
    name = _FILE_NAME.validate_python(name)  # as the EvidenceItem will hold it (trimmed)
    # Bytes first, row second: a crash in between leaves an unreferenced file that the retry reuses,
    # never a row pointing at nothing.
    sha256 = await asyncio.to_thread(store.put, data)
    async with conn.transaction():
        # ON CONFLICT DO NOTHING waits for a concurrent upload of the same bytes to commit, and the
        # SELECT after it (a new snapshot under READ COMMITTED) then sees that upload's row.
        await conn.execute(
            """INSERT INTO evidence_files (sha256, application_id, name, kind, media_type, size_bytes, uploaded_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING""",
            sha256,
            application_id,
            name,
            kind,
            media_type,
            len(data),
            uploaded_by,
        )
        row = await conn.fetchrow("SELECT * FROM evidence_files WHERE sha256 = $1", sha256)
    assert row is not None, "the row was inserted or already there"
    record = EvidenceRecord.model_validate(dict(row))
    if record.application_id != application_id:
        # Another application's id is not named: the uploader may have no right to know it.
        raise EvidenceRefused("file", f"{name!r} is already evidence of another application; upload each document once")
    assert record.size_bytes == len(data), "same SHA-256, same size"
    return record.as_item()


async def exchange_exists(conn: DbConnection, application_id: str) -> bool:
    """Whether an exchange was started for the application: its read-model row, or its run's claim, which
    the workflow writes first (activities/submission.py), before its first projection."""
    exists: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM exchanges WHERE application_id = $1)
               OR EXISTS (SELECT 1 FROM exchange_runs WHERE application_id = $1)""",
        application_id,
    )
    return exists


async def list_evidence(
    conn: DbConnection, application_id: str, *, limit: int = MAX_EVIDENCE_LISTED
) -> list[EvidenceRecord]:
    """The evidence files uploaded for an application, oldest first (at most `limit`)."""
    rows = await conn.fetch(
        """SELECT * FROM evidence_files WHERE application_id = $1
           ORDER BY stored_at, sha256 LIMIT $2""",
        application_id,
        limit,
    )
    return [EvidenceRecord.model_validate(dict(row)) for row in rows]


async def verify(conn: DbConnection, request: VerifyEvidenceInput) -> VerifyEvidenceResult:
    """Compare a report's evidence items with what was recorded for the application.

    The name is a label and is not compared; the SHA-256 (identity), size and kind are.
    """
    rows = await conn.fetch(
        "SELECT sha256, size_bytes, kind FROM evidence_files WHERE application_id = $1 AND sha256 = ANY($2::text[])",
        request.application_id,
        [item.sha256 for item in request.items],
    )
    recorded = {row["sha256"]: row for row in rows}
    missing: list[EvidenceItem] = []
    mismatched: list[EvidenceMismatch] = []
    for item in request.items:
        row = recorded.get(item.sha256)
        if row is None:
            missing.append(item)
            continue
        differences = []
        if row["size_bytes"] != item.size_bytes:
            differences.append(f"size_bytes is {item.size_bytes} but the upload was {row['size_bytes']}")
        if row["kind"] != item.kind:
            differences.append(f"kind is {item.kind} but the upload was recorded as {row['kind']}")
        if differences:
            mismatched.append(
                EvidenceMismatch(
                    item=item,
                    recorded_size_bytes=row["size_bytes"],
                    recorded_kind=row["kind"],
                    message=f"{item.name!r}: {'; '.join(differences)}",
                )
            )
    return VerifyEvidenceResult(missing=tuple(missing), mismatched=tuple(mismatched))
