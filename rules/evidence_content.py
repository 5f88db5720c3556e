"""REPORTING: what an evidence file's bytes must be, checked on the whole structure (issue 11, item 8).

Magic bytes say only how a file starts, so a PDF header followed by a zip bomb, or a JPEG followed by
PHP, used to pass. Here each accepted type is checked from its first byte to its last:

- **PDF**: parsed strictly with pypdf (the cross-reference table must be right, the document must have
  1 to `MAX_PDF_PAGES` pages); nothing but whitespace after the last `%%EOF`; no embedded files, no
  JavaScript and no launch actions anywhere in the document (the vehicles of PDF malware; a boarding
  pass or an invoice needs none; printing to PDF drops them); a password-protected PDF is accepted only
  when it opens without a password (as many airline PDFs do: they restrict printing, not reading).
- **PNG**: every chunk walked to `IEND` with its CRC, then decoded fully by Pillow; nothing after `IEND`.
- **JPEG**: every segment walked to the end-of-image marker (`FFD9`), then decoded fully by Pillow;
  nothing after it (phones' "motion photos", which append a video, must be exported as a plain photo).
- **Images** are refused above `MAX_IMAGE_PIXELS` before anything is decoded, from the dimensions in
  the header: a decompression bomb is a few kilobytes that claim gigapixels.
- **Archives** (ZIP, gzip, 7z, RAR, tar, bzip2, xz, zstd, cabinet) are never evidence: refused when the
  file is one, when one follows the document (the trailing-data rule names it), and when one is hidden
  inside (a ZIP's central directory at the end of the file, or the signature of an archive format that
  readers find anywhere, such as 7z or RAR self-extractors).

Every refusal is a `ContentRefused` whose message names the rule and, where there is one, the byte
offset; rules/evidence.py puts the file's name in front.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from PIL import Image
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, WrongPasswordError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

# A scanned boarding pass or invoice has a page or two; 100 pages is a generous bound on one document.
MAX_PDF_PAGES = 100
# 40 megapixels: a 600 dpi scan of an A4 page is 35; a phone photo 12 to 50 (48 Mpx sensors usually save
# 12 Mpx). Decoding is width x height x 4 bytes at most: 160 MB, the worst an upload can cost.
MAX_IMAGE_PIXELS = 40_000_000
# The bytes a PDF counts as white space (ISO 32000-1, 7.2.2): allowed after the last %%EOF.
_PDF_WHITESPACE = b"\x00\t\n\x0c\r "
_PDF_HEADER = re.compile(rb"%PDF-[12]\.\d")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Archive formats by their signature at the start of the data: what a refusal calls them.
_ARCHIVES_AT_START: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"MSCF\x00\x00\x00\x00", "a cabinet archive"),
)
# What else trailing data may be, to name it in the refusal.
_OTHER_CONTENT: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"<?php", "PHP code"),
    (b"<?=", "PHP code"),
    (b"<script", "a script"),
    (b"<html", "HTML"),
    (b"<!doctype html", "HTML"),
    (b"#!", "a script"),
    (b"%PDF-", "another PDF"),
    (_PNG_SIGNATURE, "another PNG image"),
    (b"\xff\xd8\xff", "another JPEG image"),
)
# Archive signatures long enough (6 bytes or more) to look for anywhere without false alarms: at about
# one chance in 2^48 per position, a 10 MiB file of random bytes matches by chance once in ten million.
# Their readers find them anywhere in a file (self-extracting archives put them after an executable).
_ARCHIVES_ANYWHERE: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"MSCF\x00\x00\x00\x00", "a cabinet archive"),
    (b"ustar\x0000", "a tar archive"),
    (b"ustar  \x00", "a tar archive"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")  # the stream header and the first block's magic, 10 bytes
_TAR_MAGIC_OFFSET = 257
# A ZIP reader looks for the end of central directory in the last 64 KiB (the longest comment) + 22 bytes.
_ZIP_END = b"PK\x05\x06"
_ZIP_DIRECTORY = b"PK\x01\x02"
_ZIP_END_SEARCH_BYTES = 0xFFFF + 22


class ContentRefused(Exception):
    """The bytes break a rule of their type; the message names the rule (and the byte offset)."""


def archive_at_start(data: bytes) -> str | None:
    """What archive `data` is, by its first bytes (a tar by its header's magic), or None."""
    for signature, what in _ARCHIVES_AT_START:
        if data.startswith(signature):
            return what
    if data[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "a tar archive"
    return None


def check_content(data: bytes, media_type: str) -> None:
    """Check the whole of `data` as `media_type` (detected from its first bytes); raise `ContentRefused`."""
    if media_type == "application/pdf":
        _check_pdf(data)
    elif media_type == "image/png":
        _check_png(data)
    elif media_type == "image/jpeg":
        _check_jpeg(data)
    else:
        raise ValueError(f"media_type {media_type!r}: no structural check for it")
    _refuse_hidden_archives(data)


def _refuse_after(data: bytes, end: int, label: str) -> None:
    """Refuse anything at or after `end`, naming what it looks like and where it starts."""
    if end < len(data):
        raise ContentRefused(f"data after the end of the {label} ({describe(data, end)}) is not allowed")


def describe(data: bytes, offset: int) -> str:
    """What starts at `offset` ("a ZIP archive at byte 1,234"), or an archive found later in the rest."""
    rest = data[offset:]
    lowered = rest[:16].lower()
    what = archive_at_start(rest) or next(
        (name for signature, name in _OTHER_CONTENT if lowered.startswith(signature)), None
    )
    if what is not None:
        return f"{what} at byte {offset:,}"
    for signature, name in _ARCHIVES_AT_START[:1] + _ARCHIVES_ANYWHERE:
        found = rest.find(signature)
        if found >= 0:
            return f"{len(rest):,} bytes from byte {offset:,}, with {name} at byte {offset + found:,}"
    return f"{len(rest):,} bytes from byte {offset:,}"


def _refuse_hidden_archives(data: bytes) -> None:
    for signature, what in _ARCHIVES_ANYWHERE:
        found = data.find(signature)
        if found >= 0:
            # A tar's magic sits 257 bytes into its header: name where the archive itself starts.
            start = found - _TAR_MAGIC_OFFSET if what == "a tar archive" else found
            raise ContentRefused(f"contains {what} at byte {max(start, 0):,}; archives are not accepted")
    bzip2 = _BZIP2.search(data)
    if bzip2 is not None:
        raise ContentRefused(f"contains a bzip2 archive at byte {bzip2.start():,}; archives are not accepted")
    directory = _zip_directory(data)
    if directory is not None:
        raise ContentRefused(f"contains a ZIP archive (its directory at byte {directory:,}); archives are not accepted")


def _zip_directory(data: bytes) -> int | None:
    """Where a ZIP reader would find a central directory in `data`, or None.

    A ZIP is read from its end: the end-of-directory record gives the directory's size, and the directory
    lies just before the record. Both must be there (with at least one entry) for this to say yes, so a
    stray `PK\\x05\\x06` in compressed data is no false alarm.
    """
    search_from = max(0, len(data) - _ZIP_END_SEARCH_BYTES)
    end = data.rfind(_ZIP_END, search_from)
    while end >= search_from:
        record = data[end : end + 22]
        if len(record) == 22:
            # Total entries at offset 10, the directory's size at 12 (APPNOTE.TXT 4.3.16).
            entries, directory_size = struct.unpack_from("<HI", record, 10)
            start: int = end - directory_size
            if entries > 0 and 0 <= start < end and data.startswith(_ZIP_DIRECTORY, start):
                return start
        end = data.rfind(_ZIP_END, search_from, end)
    return None


# --- PDF ------------------------------------------------------------------------------------------------

# Keys and values that mark JavaScript, embedded files and launch actions (ISO 32000-1, 12.6, 7.11).
_SCRIPT_KEYS = {"/JS", "/JavaScript"}
_EMBEDDED_KEYS = {"/EmbeddedFiles", "/EmbeddedFile", "/EF"}
_REFUSED_ACTIONS = {"/JavaScript": "JavaScript", "/Launch": "a launch action (it runs a program)"}


def _check_pdf(data: bytes) -> None:
    if not _PDF_HEADER.match(data):
        raise ContentRefused("not a PDF: it does not start with a PDF header such as %PDF-1.7")
    last_eof = data.rfind(b"%%EOF")
    if last_eof < 0:
        raise ContentRefused("not a complete PDF: no %%EOF marker at its end (truncated?)")
    end = last_eof + len(b"%%EOF")
    tail = data[end:]
    trailing = len(tail) - len(tail.lstrip(_PDF_WHITESPACE))
    _refuse_after(data, end + trailing, "PDF")
    try:
        reader = PdfReader(io.BytesIO(data), strict=True)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ContentRefused("the PDF is protected by a password; upload a copy that opens without one")
        pages = len(reader.pages)
        found = _forbidden_in_pdf(reader)
    except ContentRefused:
        raise
    except (DependencyError, FileNotDecryptedError, WrongPasswordError):
        # AES needs a cryptography library this engine does not ship: such a PDF cannot be checked inside.
        raise ContentRefused("the PDF is encrypted; upload a copy without protection (print it to a new PDF)") from None
    except Exception as error:  # noqa: BLE001 - any parser failure is the refusal, as said below
        # pypdf answers hostile bytes with a dozen exception types (PdfReadError, ValueError, KeyError,
        # RecursionError, ...): whichever it is, the file does not read as a PDF, which is the rule.
        raise ContentRefused(f"not a readable PDF ({_reason(error)}); print it to a new PDF and upload that") from None
    if pages == 0:
        raise ContentRefused("the PDF has no pages")
    if pages > MAX_PDF_PAGES:
        raise ContentRefused(f"the PDF has {pages} pages; at most {MAX_PDF_PAGES} per document")
    if found is not None:
        raise ContentRefused(f"the PDF contains {found}, which is not allowed; print it to a new PDF and upload that")


def _forbidden_in_pdf(reader: PdfReader) -> str | None:
    """JavaScript, an embedded file or a launch action in any object of the document, or None.

    Every object the cross-reference table lists is looked at (with the dictionaries and arrays nested in
    it), so nothing is missed by following only the catalog: a document's parts are all in that table.
    """
    for value in _pdf_values(reader):
        if not isinstance(value, DictionaryObject):
            continue
        keys = set(value.keys())
        if keys & _SCRIPT_KEYS:
            return "JavaScript"
        if keys & _EMBEDDED_KEYS or value.get("/Type") == "/EmbeddedFile":
            return "an embedded file"
        action = value.get("/S")
        if isinstance(action, NameObject) and action in _REFUSED_ACTIONS:
            return _REFUSED_ACTIONS[action]
    return None


def _pdf_values(reader: PdfReader) -> Iterator[Any]:
    """Every object of the document and every dictionary or array nested in one, without recursion
    (references are not followed: the object they point at is listed on its own)."""
    numbers = {(number, generation) for generation, table in reader.xref.items() for number in table}
    numbers |= {(number, 0) for number in reader.xref_objStm}
    for number, generation in sorted(numbers):
        if number == 0:
            continue  # the head of the free list, never an object
        stack: list[Any] = [reader.get_object(IndirectObject(number, generation, reader))]
        while stack:
            value = stack.pop()
            yield value
            if isinstance(value, DictionaryObject):
                stack.extend(v for v in value.values() if not isinstance(v, IndirectObject))
            elif isinstance(value, ArrayObject):
                stack.extend(v for v in value if not isinstance(v, IndirectObject))


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 120 else text[:120] + "..."


# --- images ---------------------------------------------------------------------------------------------


def _check_png(data: bytes) -> None:
    """Walk the chunks: IHDR first (its size checked before anything is decoded), every CRC right, IEND last."""
    offset = len(_PNG_SIGNATURE)
    first = True
    while True:
        if offset + 12 > len(data):
            raise ContentRefused(f"not a complete PNG: it ends inside a chunk at byte {offset:,} (truncated?)")
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise ContentRefused(f"not a valid PNG: a malformed chunk at byte {offset:,}")
        if end > len(data):
            raise ContentRefused(
                f"not a complete PNG: it ends inside the {kind.decode()} chunk at byte {offset:,} (truncated?)"
            )
        if first and kind != b"IHDR":
            raise ContentRefused("not a valid PNG: the first chunk is not IHDR")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[offset + 4 : end - 4]) != crc:
            raise ContentRefused(f"not a valid PNG: the {kind.decode()} chunk at byte {offset:,} is damaged (CRC)")
        if first:
            width, height = struct.unpack_from(">II", data, offset + 8)
            _refuse_too_many_pixels(width, height)
            first = False
        offset = end
        if kind == b"IEND":
            break
    _refuse_after(data, offset, "PNG image")
    _decode(data, "PNG")


# Markers with no length: TEM, RST0-RST7 (SOI and EOI are handled where they occur).
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}
# Start-of-frame markers carry the image's size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_FRAME_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _check_jpeg(data: bytes) -> None:
    """Walk the segments from SOI to EOI (through the entropy-coded data after each SOS); check the
    frame's size before anything is decoded."""
    offset = 2  # after SOI, FFD8
    sized = False
    while True:
        if offset + 2 > len(data):
            raise ContentRefused("not a complete JPEG: no end-of-image marker (truncated?)")
        if data[offset] != 0xFF:
            raise ContentRefused(f"not a valid JPEG: a segment expected at byte {offset:,}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker == 0xD9:  # EOI
            offset += 2
            break
        if marker in _STANDALONE_MARKERS:
            offset += 2
            continue
        if offset + 4 > len(data):
            raise ContentRefused("not a complete JPEG: no end-of-image marker (truncated?)")
        (length,) = struct.unpack_from(">H", data, offset + 2)
        end = offset + 2 + length
        if length < 2:
            raise ContentRefused(f"not a valid JPEG: a malformed segment at byte {offset:,}")
        if end > len(data):
            raise ContentRefused(f"not a complete JPEG: it ends inside the segment at byte {offset:,} (truncated?)")
        if marker in _FRAME_MARKERS and length >= 8:
            height, width = struct.unpack_from(">HH", data, offset + 5)
            _refuse_too_many_pixels(width, height)
            sized = True
        offset = _after_scan(data, end) if marker == 0xDA else end
    if not sized:
        raise ContentRefused("not a valid JPEG: no frame header (no image size)")
    _refuse_after(data, offset, "JPEG image")
    _decode(data, "JPEG")


def _after_scan(data: bytes, offset: int) -> int:
    """The offset of the first marker after entropy-coded data (FF followed by neither 00 nor RSTn)."""
    while True:
        found = data.find(b"\xff", offset)
        if found < 0 or found + 1 >= len(data):
            raise ContentRefused("not a complete JPEG: no end-of-image marker (truncated?)")
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            offset = found + 2
            continue
        return found


def _refuse_too_many_pixels(width: int, height: int) -> None:
    if width == 0 or height == 0:
        raise ContentRefused(f"the image is {width} x {height} pixels: empty")
    if width * height > MAX_IMAGE_PIXELS:
        raise ContentRefused(
            f"the image claims {width:,} x {height:,} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel "
            "limit (a decompression bomb, or a scan at too high a resolution)"
        )


def _decode(data: bytes, label: str) -> None:
    """Pillow's check of the structure, then a full decode of every pixel."""
    try:
        with Image.open(io.BytesIO(data), formats=[label]) as image:
            image.verify()
        # verify() leaves the image unusable: open again to decode it.
        with Image.open(io.BytesIO(data), formats=[label]) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 - any decoder failure is the refusal, as said below
        # Like pypdf, Pillow answers broken images with many types (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, ...): any of them means the image does not decode, which is the rule.
        raise ContentRefused(f"not a readable {label} image ({_reason(error)})") from None
