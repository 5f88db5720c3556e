"""Evidence checked on its whole structure (issue 11, item 8), through the shared `store_evidence` that both
`cx evidence add` and the REST upload call: polyglots, archives, bombs and active PDFs are refused naming
the file and the rule, with nothing stored; real documents pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from ledger.evidence import list_evidence, store_evidence
from ledger.evidence_store import FileEvidenceStore
from rules.evidence import EvidenceRefused
from rules.evidence_content import MAX_IMAGE_PIXELS
from tests.reporting.documents import (
    jpeg,
    pdf,
    pdf_protected,
    pdf_with_attachment,
    pdf_with_javascript,
    pdf_with_zip_inside,
    png,
    png_bomb,
    png_with_chunk,
    pypdf_pdf,
    tar_archive,
    zip_archive,
    zip_bomb,
)
from tests.reporting.test_store import files_in, started, unique_tag

PHP = b"<?php system($_GET['c']); ?>\n"
SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24


def _pdf_then_zip_bomb(tag: str) -> bytes:
    return pdf(tag) + zip_bomb(tag)


def _pdf_then_7z(tag: str) -> bytes:
    return pypdf_pdf(tag) + b"\n" + SEVEN_ZIP


def _jpeg_then_php(tag: str) -> bytes:
    return jpeg(tag) + PHP


def _png_then_php(tag: str) -> bytes:
    return png(tag) + PHP


def _png_with_zip_in_a_chunk(tag: str) -> bytes:
    # A private chunk carrying a ZIP, whose directory ends 12 bytes before the file does: unzip opens it.
    return png_with_chunk(tag, b"prVt", zip_archive(tag))


def _pdf_with_7z_in_a_comment(tag: str) -> bytes:
    return pdf(tag, comment=SEVEN_ZIP)


def _pdf_with_tar_in_a_comment(tag: str) -> bytes:
    return pdf(tag, comment=tar_archive(tag).replace(b"\n", b" ").replace(b"\r", b" "))


def _truncated_png(tag: str) -> bytes:
    return png(tag)[:-20]


def _truncated_jpeg(tag: str) -> bytes:
    return jpeg(tag)[:-40]


def _png_with_a_damaged_chunk(tag: str) -> bytes:
    image = bytearray(png(tag))
    image[45] ^= 0xFF  # inside the data of the chunk after IHDR: its CRC no longer matches
    return bytes(image)


def _only_a_pdf_header(tag: str) -> bytes:
    return b"%PDF-1.4\n% " + tag.encode() + b"\n%%EOF\n"


def _huge_jpeg(tag: str) -> bytes:
    # A real JPEG whose frame header is rewritten to claim 60,000 x 60,000 pixels.
    image = bytearray(jpeg(tag))
    frame = image.index(b"\xff\xc0")
    image[frame + 5 : frame + 9] = (60_000).to_bytes(2, "big") * 2
    return bytes(image)


def _password_protected(tag: str) -> bytes:
    return pdf_protected(tag, "secret")


@pytest.mark.parametrize(
    ("make", "name", "field", "words"),
    [
        (_pdf_then_zip_bomb, "boarding-pass.pdf", "file", "data after the end of the PDF (a ZIP archive at byte"),
        (_pdf_then_7z, "boarding-pass.pdf", "file", "data after the end of the PDF (a 7z archive at byte"),
        (_jpeg_then_php, "hotel.jpg", "file", "data after the end of the JPEG image (PHP code at byte"),
        (_png_then_php, "hotel.png", "file", "data after the end of the PNG image (PHP code at byte"),
        (zip_archive, "invoice.pdf", "media_type", "it is a ZIP archive"),
        (zip_bomb, "invoice.pdf", "media_type", "archives are not accepted"),
        (tar_archive, "invoice.pdf", "media_type", "it is a tar archive"),
        (pdf_with_zip_inside, "ticket.pdf", "file", "contains a ZIP archive (its directory at byte"),
        (_png_with_zip_in_a_chunk, "scan.png", "file", "contains a ZIP archive (its directory at byte"),
        (_pdf_with_7z_in_a_comment, "ticket.pdf", "file", "contains a 7z archive at byte"),
        (_pdf_with_tar_in_a_comment, "ticket.pdf", "file", "contains a tar archive at byte"),
        (_only_a_pdf_header, "ticket.pdf", "file", "not a readable PDF"),
        (pdf_with_javascript, "ticket.pdf", "file", "the PDF contains JavaScript, which is not allowed"),
        (pdf_with_attachment, "ticket.pdf", "file", "the PDF contains an embedded file, which is not allowed"),
        (_password_protected, "ticket.pdf", "file", "the PDF is protected by a password"),
        (lambda tag: png_bomb(), "bomb.png", "file", "claims 100,000 x 100,000 pixels, over the 40 megapixel limit"),
        (_huge_jpeg, "huge.jpg", "file", "claims 60,000 x 60,000 pixels"),
        (_truncated_png, "scan.png", "file", "not a complete PNG"),
        (_truncated_jpeg, "scan.jpg", "file", "not a complete JPEG"),
        (_png_with_a_damaged_chunk, "scan.png", "file", "is damaged (CRC)"),
    ],
    ids=[
        "pdf-then-zip-bomb",
        "pdf-then-7z",
        "jpeg-then-php",
        "png-then-php",
        "zip-named-pdf",
        "zip-bomb-named-pdf",
        "tar-named-pdf",
        "zip-inside-a-pdf",
        "zip-inside-a-png-chunk",
        "7z-inside-a-pdf",
        "tar-inside-a-pdf",
        "pdf-header-only",
        "pdf-with-javascript",
        "pdf-with-embedded-file",
        "pdf-with-password",
        "png-decompression-bomb",
        "jpeg-claiming-gigapixels",
        "truncated-png",
        "truncated-jpeg",
        "png-with-bad-crc",
    ],
)
async def test_hostile_files_are_refused_naming_the_file_and_the_rule(
    pg_pool: asyncpg.Pool, tmp_path: Path, make: Callable[[str], bytes], name: str, field: str, words: str
) -> None:
    """Each hostile file is refused by the shared store function with the field and the rule, the file's
    name in the message; no row is recorded and no byte is stored."""
    application_id = await started(pg_pool)
    store = FileEvidenceStore(tmp_path)
    async with pg_pool.acquire() as conn:
        with pytest.raises(EvidenceRefused) as refused:
            await store_evidence(
                conn,
                store,
                application_id=application_id,
                path_or_bytes=make(unique_tag()),
                name=name,
                kind="other",
                uploaded_by="officer",
            )
        assert await list_evidence(conn, application_id) == []
    assert refused.value.field == field, refused.value
    assert words in refused.value.message, refused.value.message
    assert f"'{name}'" in refused.value.message
    assert files_in(tmp_path) == []


def _pdf_then_white_space(tag: str) -> bytes:
    return pdf(tag) + b"\r\n \n\x00"


def _pdf_with_empty_user_password(tag: str) -> bytes:
    return pdf_protected(tag, "")


def _pdf_of_ten_pages(tag: str) -> bytes:
    return pypdf_pdf(tag, pages=10)


def _image_at_the_pixel_limit(tag: str) -> bytes:
    side = int(MAX_IMAGE_PIXELS**0.5)
    return png(tag, size=(side, side))


@pytest.mark.parametrize(
    "make",
    [_pdf_then_white_space, _pdf_with_empty_user_password, _pdf_of_ten_pages, _image_at_the_pixel_limit],
    ids=["pdf-ending-in-white-space", "pdf-restricted-without-password", "pdf-of-ten-pages", "png-at-pixel-limit"],
)
async def test_real_documents_at_the_edges_of_the_rules_pass(
    pg_pool: asyncpg.Pool, tmp_path: Path, make: Callable[[str], bytes]
) -> None:
    """White space after `%%EOF`, a PDF that restricts printing but opens without a password, several pages
    and an image of just under 40 megapixels are all accepted and stored."""
    application_id = await started(pg_pool)
    store = FileEvidenceStore(tmp_path)
    data = make(unique_tag())
    async with pg_pool.acquire() as conn:
        item = await store_evidence(
            conn,
            store,
            application_id=application_id,
            path_or_bytes=data,
            name="document",
            kind="other",
            uploaded_by="officer",
        )
    assert item.size_bytes == len(data)
    assert store.path_for(item.sha256).read_bytes() == data
