"""REPORTING: what an evidence file of a closing report may be (issue 6, point 5; issue 11, item 8).

`check_evidence` applies the rules to an upload: its name, its kind (the contract's), its size against
`EvidenceLimits`, the media type detected from the content's first bytes (never from the file name),
then the whole structure of that type (rules/evidence_content.py, where polyglots and archives are
refused). `read_upload` reads the caller's file without ever loading more than the limit. Every refusal
is an `EvidenceRefused` naming the field and the rule. Storing and recording an accepted file is
ledger/evidence.py's.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from rules.evidence_content import ContentRefused, archive_at_start, check_content
from schemas.exchange import EvidenceItem
from schemas.text import FileName

MIB = 1024 * 1024
# A scanned boarding pass or invoice is well under 1 MiB; 10 MiB leaves room for a multi-page PDF
# scan while keeping a runaway upload (a video, a disk image) out of the store.
MAX_EVIDENCE_SIZE_BYTES = 10 * MIB
ALLOWED_MEDIA_TYPES: tuple[str, ...] = ("application/pdf", "image/png", "image/jpeg")
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
# are named by rules/evidence_content.py `archive_at_start`).
_RECOGNISED_REFUSALS: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"#!", "a script"),
    (b"<?php", "PHP code"),
    (b"GIF8", "a GIF image"),
)

_FILE_NAME = TypeAdapter(FileName)


class EvidenceRefused(Exception):
    """An upload broke a rule; `field` is `file`, `name`, `kind`, `size_bytes`, `media_type`, ...

    The message is a sentence an applicant can act on; `str()` reads "<field>: <message>".
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


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
        raise EvidenceRefused("size_bytes", too_large(name, len(data), limits))
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


def too_large(name: str, size_bytes: int, limits: EvidenceLimits) -> str:
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
            raise EvidenceRefused("size_bytes", too_large(path.name, size_bytes, limits))
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
