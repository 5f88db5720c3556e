"""REPORTING: evidence files of closing reports (boarding passes, invoices), stored by content (issue 6, point 5).

- `EvidenceStore` keeps the bytes under `<root>/<sha256[:2]>/<sha256>`, written atomically (a temporary
  file in the same directory, fsynced, then renamed), so a reader never sees half a file and the same
  bytes are stored once whoever uploads them.
- `store_evidence` refuses an upload for an application that started no exchange (`ApplicationUnknown`),
  checks the file against `EvidenceLimits` (size, the media type detected from the content's first
  bytes, never from the file name, then the whole structure of that type: activities/evidence_content.py,
  where polyglots and archives are refused), stores it, records it in `evidence_files` and returns the
  `EvidenceItem` to put in `submit_report`. Uploading the same bytes again returns the same record.
  Every refusal is an `EvidenceRefused` naming the field and the rule. Who may upload for which exchange
  is the caller's to decide (the REST API: its submitter, officers and services; `cx evidence`: the back
  office, docs/operations.md).
- `EvidenceActivities.verify_evidence` lets the Exchange workflow refuse a report whose evidence points
  at files never uploaded for the application, or recorded with another size or kind.

The plain `async def ...(conn, ...)` functions are the SQL-level operations behind `cx evidence`, kept
here so that a future REST API reuses them unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from temporalio import activity

from activities.calendar import add_working_days
from activities.evidence_content import ContentRefused, archive_at_start, check_content
from activities.projection import transact
from schemas.events import ProjectionBatch
from schemas.exchange import EvidenceItem
from schemas.ids import ActorId, ApplicationId
from schemas.text import FileName

# A connection of the caller's: a plain one (CLI) or one acquired from a pool (activities, API).
DbConnection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy"

MIB = 1024 * 1024
# A scanned boarding pass or invoice is well under 1 MiB; 10 MiB leaves room for a multi-page PDF
# scan while keeping a runaway upload (a video, a disk image) out of the store.
MAX_EVIDENCE_SIZE_BYTES = 10 * MIB
ALLOWED_MEDIA_TYPES: tuple[str, ...] = ("application/pdf", "image/png", "image/jpeg")
# Limits on every read and list (TIGER_STYLE): a report has a handful of documents; these bounds are
# far above that and only stop a runaway request.
MAX_EVIDENCE_ITEMS = 100
MAX_EVIDENCE_LISTED = 1000

# The kinds are the contract's (schemas/exchange.py `EvidenceItem.kind`), read from it so that a new
# kind there is accepted here without a second list to keep in step.
EVIDENCE_KINDS: tuple[str, ...] = typing.get_args(EvidenceItem.model_fields["kind"].annotation)

# Signatures at the very start of the file. PDF readers tolerate junk before `%PDF-`, but a document
# produced by a scanner, an airline or a hotel starts with it, and a strict check is the safer limit.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
_LABELS = {"application/pdf": "PDF", "image/png": "PNG", "image/jpeg": "JPEG"}
# Only to make a refusal say what the file looks like instead; none of these is ever accepted (archives
# are named by activities/evidence_content.py `archive_at_start`).
_RECOGNISED_REFUSALS: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"#!", "a script"),
    (b"<?php", "PHP code"),
    (b"GIF8", "a GIF image"),
)

_APPLICATION_ID = TypeAdapter(ApplicationId)
_ACTOR_ID = TypeAdapter(ActorId)
_FILE_NAME = TypeAdapter(FileName)


class EvidenceRefused(Exception):
    """An upload broke a rule; `field` is `file`, `name`, `kind`, `size_bytes`, `media_type`, ...

    The message is a sentence an applicant can act on; `str()` reads "<field>: <message>".
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ApplicationUnknown(EvidenceRefused):
    """No exchange was started for the application: there is no report its evidence could belong to."""

    def __init__(self, application_id: str) -> None:
        self.application_id = application_id
        super().__init__(
            "application_id", f"{application_id!r}: no such exchange; evidence is uploaded for a started exchange"
        )


@dataclass(frozen=True)
class EvidenceLimits:
    """What an evidence file may be, like a policy section: a size limit and the media types accepted."""

    max_size_bytes: int = MAX_EVIDENCE_SIZE_BYTES
    allowed_media_types: tuple[str, ...] = ALLOWED_MEDIA_TYPES

    def __post_init__(self) -> None:
        if self.max_size_bytes <= 0:
            raise ValueError("max_size_bytes: must be positive")
        # A type we cannot detect could never match, which would be a silent misconfiguration.
        unknown = set(self.allowed_media_types) - set(_LABELS)
        if unknown or not self.allowed_media_types:
            raise ValueError(f"allowed_media_types: each must be one of {', '.join(_LABELS)}")


DEFAULT_LIMITS = EvidenceLimits()


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


class VerifyEvidenceInput(BaseModel):
    """Input of `verify_evidence`: the evidence a report points at, for one application."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: ApplicationId
    items: Annotated[tuple[EvidenceItem, ...], Field(min_length=1, max_length=MAX_EVIDENCE_ITEMS)]
    projection: ProjectionBatch | None = Field(
        default=None, description="what the workflow recorded since its last write, written in the same transaction"
    )
    validation_working_days: int | None = Field(
        default=None, ge=0, description="when set, the VOP's validation deadline is counted from `now`"
    )
    country: str | None = Field(default=None, description="whose calendar counts the working days")
    now: datetime | None = None


class EvidenceMismatch(BaseModel):
    """An item whose file was uploaded for the application but recorded with another size or kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: EvidenceItem
    recorded_size_bytes: int
    recorded_kind: str
    message: str = Field(description="a sentence naming what differs, to send back with the report")


class VerifyEvidenceResult(BaseModel):
    """What `verify_evidence` found wrong; both tuples empty means every item checks out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    missing: tuple[EvidenceItem, ...] = Field(
        default=(), description="never uploaded for this application (or uploaded for another one)"
    )
    mismatched: tuple[EvidenceMismatch, ...] = ()
    validation_due: datetime | None = Field(default=None, description="the VOP's deadline for this report")

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


class _HasEvidenceDir(Protocol):
    """What the store needs of the process settings (workers.settings.Settings), without importing workers."""

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


def detect_media_type(data: bytes) -> str | None:
    """The media type by the content's magic bytes (PDF, PNG, JPEG), or None when it is none of them."""
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return None


def check_evidence(data: bytes, name: str, kind: str, limits: EvidenceLimits = DEFAULT_LIMITS) -> str:
    """Apply the rules to an upload and return its media type; raise `EvidenceRefused` on the first broken one.

    Cheap rules first (name, kind, size, the first bytes), then the whole structure of the detected type.
    """
    if not 1 <= len(name) <= 255:
        raise EvidenceRefused("name", "must be 1 to 255 characters")
    try:
        _FILE_NAME.validate_python(name)
    except ValidationError as error:
        raise EvidenceRefused("name", f"{name!r}: {error.errors()[0]['msg']}") from None
    if kind not in EVIDENCE_KINDS:
        raise EvidenceRefused("kind", f"{kind!r} is not one of {', '.join(EVIDENCE_KINDS)}")
    if not data:
        raise EvidenceRefused("size_bytes", f"{name!r} is empty (0 bytes): upload the document itself")
    if len(data) > limits.max_size_bytes:
        raise EvidenceRefused("size_bytes", _too_large(name, len(data), limits))
    media_type = detect_media_type(data)
    if media_type is None or media_type not in limits.allowed_media_types:
        raise EvidenceRefused("media_type", _wrong_type(data, name, media_type, limits))
    try:
        check_content(data, media_type)
    except ContentRefused as refused:
        raise EvidenceRefused("file", f"{name!r}: {refused}") from None
    return media_type


def _mib(size_bytes: int) -> str:
    mib = size_bytes / MIB
    return f"{mib:.0f} MiB" if mib == int(mib) else f"{mib:.1f} MiB"


def _too_large(name: str, size_bytes: int, limits: EvidenceLimits) -> str:
    shown = _mib(size_bytes)
    if f"{size_bytes / MIB:.1f}" == f"{limits.max_size_bytes / MIB:.1f}":
        # Just over the limit rounds to the limit itself ("10.0 MiB, over the 10 MiB limit"): show bytes.
        shown = f"{size_bytes:,} bytes"
    return f"{name!r} is {shown}, over the {_mib(limits.max_size_bytes)} limit"


def _wrong_type(data: bytes, name: str, detected: str | None, limits: EvidenceLimits) -> str:
    accepted = [_LABELS[t] for t in limits.allowed_media_types]
    accepted_text = accepted[0] if len(accepted) == 1 else f"{', '.join(accepted[:-1])} or {accepted[-1]}"
    archive = archive_at_start(data)
    if detected is not None:
        looks_like = f"it is {_LABELS[detected]}"
    elif archive is not None:
        # An Office document is a ZIP too: say so, since that is the archive people upload most.
        office = " (an Office document is one too: save it as PDF)" if "ZIP" in archive else ""
        looks_like = f"it is {archive}{office}; archives are not accepted: upload each document by itself"
    else:
        looks_like = next(
            (f"it starts like {what}" for signature, what in _RECOGNISED_REFUSALS if data.startswith(signature)),
            "its first bytes are no known signature",
        )
    suffix = Path(name).suffix
    # Name the disguise: the extension is what a person trusts, and it is exactly what we ignore.
    disguise = f"; the name's {suffix} does not count, only the content" if suffix else ""
    return f"{name!r}: the content is not {accepted_text} ({looks_like}){disguise}"


def read_upload(path_or_bytes: Path | bytes, limits: EvidenceLimits = DEFAULT_LIMITS) -> bytes:
    """The upload's bytes (a file larger than the limit is refused on `size_bytes` without being read)."""
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes
    path = path_or_bytes
    try:
        size_bytes = path.stat().st_size
        if not path.is_file():
            raise EvidenceRefused("file", f"{str(path)!r} is not a regular file")
        if size_bytes > limits.max_size_bytes:
            # Refused before reading: an oversized file is never loaded into memory.
            raise EvidenceRefused("size_bytes", _too_large(path.name, size_bytes, limits))
        with path.open("rb") as handle:
            # One byte over the limit is enough to refuse a file that grew since stat().
            return handle.read(limits.max_size_bytes + 1)
    except FileNotFoundError:
        raise EvidenceRefused("file", f"{str(path)!r} does not exist") from None
    except PermissionError:
        raise EvidenceRefused("file", f"{str(path)!r} cannot be read (permission denied)") from None
    except OSError as error:
        # A name too long, a loop of links, a path through a file: the caller's path, not a server.
        raise EvidenceRefused("file", f"{str(path)!r} cannot be read ({error.strerror or error})") from None


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


class EvidenceActivities:
    """The reporting stage's evidence checks, on one shared pool."""

    def __init__(self, pool: asyncpg.Pool, notify_email: str | None = None) -> None:
        self._pool = pool
        self._notify_email = notify_email

    @activity.defn(name="verify_evidence")
    async def verify_evidence(self, request: VerifyEvidenceInput) -> VerifyEvidenceResult:
        """List the report's items that were never uploaded for the application or differ in size or kind,
        and count the VOP's validation deadline; the workflow's recorded events are written on the way.

        A finding is a result, not an error: the workflow decides to refuse the report with it. Database
        failures propagate and are retried.
        """

        async def check(conn: DbConnection, _: ProjectionBatch | None) -> VerifyEvidenceResult:
            result = await verify(conn, request)
            if request.validation_working_days is None or request.now is None or request.country is None:
                return result
            due = add_working_days(request.now.date(), request.validation_working_days, request.country)
            return result.model_copy(update={"validation_due": datetime.combine(due, request.now.timetz())})

        return await transact(self._pool, request.projection, check, self._notify_email)
