"""REPORTING: evidence files of closing reports (boarding passes, invoices), stored by content and recorded.

- The bytes go to an `EvidenceStore` (ledger/evidence_store.py): a local directory by default, or
  S3-compatible object storage (ledger/evidence_s3.py); addressed by SHA-256 in both, so the same bytes are
  stored once whoever uploads them.
- `store_evidence` refuses an upload for an application that started no exchange (`ApplicationUnknown`),
  checks the file by the rules (rules/evidence.py), stores it, records it in `evidence_files` and returns
  the `EvidenceItem` to put in `submit_report`. Uploading the same bytes again returns the same record.
  Who may upload for which exchange is the caller's to decide (the REST API: its submitter, officers and
  services; `cx evidence`: the back office, docs/operations.md).
- `verify` compares a report's items with what was recorded and, given what `unreadable_copies` found in
  the store, names the items whose stored copy is missing or damaged; the Exchange workflow's
  `verify_evidence` activity (activities/reporting.py) runs both.

These functions take the caller's connection (a plain one for `cx evidence`, a pool's for the API and
the activities): the one way clients reach these rows (docs/adr/0014-one-way-imports.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ledger.evidence_store import EvidenceStore, EvidenceUnreadable
from ledger.store import DbConnection
from rules.evidence import DEFAULT_LIMITS, EvidenceLimits, EvidenceRefused, check_evidence, read_upload
from schemas.exchange import EvidenceItem
from schemas.ids import ActorId, ApplicationId
from schemas.reporting import EvidenceMismatch, VerifyEvidenceInput, VerifyEvidenceResult
from schemas.text import FileName

# A report has a handful of documents; this bound on a listing is far above that and only stops a
# runaway request (TIGER_STYLE).
MAX_EVIDENCE_LISTED = 1000
# Stored copies read at once when a report is checked (`unreadable_copies`): bounds the worker's memory.
READS_AT_ONCE = 4

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
    sha256 = await store.put(data)
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


async def unreadable_copies(store: EvidenceStore, items: Sequence[EvidenceItem]) -> dict[str, EvidenceUnreadable]:
    """The items whose stored copy cannot be read back intact, by SHA-256: missing or damaged in the store.

    A few at a time (READS_AT_ONCE files of at most 10 MiB in memory), so a report of a few dozen files is
    read well within the activity's 30 s; a store that cannot be reached raises, so the activity is retried
    rather than a report refused for an outage.
    """
    problems: dict[str, EvidenceUnreadable] = {}
    at_once = asyncio.Semaphore(READS_AT_ONCE)

    async def read(sha256: str) -> None:
        async with at_once:
            try:
                await store.get(sha256)
            except EvidenceUnreadable as problem:
                problems[sha256] = problem

    # The first outage propagates as itself (not an ExceptionGroup); reads still running end within the
    # store's own bounds and their results are dropped.
    await asyncio.gather(*(read(sha256) for sha256 in dict.fromkeys(item.sha256 for item in items)))
    return problems


async def verify(
    conn: DbConnection, request: VerifyEvidenceInput, unreadable: Mapping[str, EvidenceUnreadable] | None = None
) -> VerifyEvidenceResult:
    """Compare a report's evidence items with what was recorded for the application.

    The name is a label and is not compared; the SHA-256 (identity), size and kind are. An item recorded
    as it should be whose stored copy is `unreadable` (found by `unreadable_copies`) is a mismatch that asks
    for the file again: uploading the same bytes restores the copy (every store replaces a damaged one), and
    the record stays as it was.
    """
    unreadable = unreadable or {}
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
        if not differences and item.sha256 in unreadable:
            differences.append("the stored copy is missing or damaged; upload the file again")
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
