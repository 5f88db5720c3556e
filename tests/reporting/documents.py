"""Evidence files for tests: real documents (a hand-written PDF, Pillow's PNG and JPEG, pypdf's PDF), each
unique per tag (the store is addressed by SHA-256), and the hostile files issue 11 names, built here:
polyglots, archives, decompression bombs, PDFs carrying JavaScript or an embedded file."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tarfile
import zipfile
import zlib

from PIL import Image, PngImagePlugin
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject


def pdf(tag: str, size_bytes: int | None = None, comment: bytes = b"") -> bytes:
    """A one-page PDF written by hand, as a scanner or an airline's system would: header, four objects,
    a cross-reference table with every offset right, trailer, `%%EOF`. The tag is its title; `comment`
    (no line breaks) is a comment line after the header; `size_bytes` pads it to exactly that size."""
    assert b"\n" not in comment, "a comment is one line"
    assert b"\r" not in comment, "a comment is one line"
    comment_line = b"%" + comment + b"\n" if comment else b""
    document = _hand_written_pdf(tag, comment_line)
    if size_bytes is None:
        return document
    padding = size_bytes - len(document)
    for _ in range(3):  # the startxref offset may gain digits as the padding grows: adjust and rebuild
        assert padding >= 2, f"a PDF of {size_bytes} bytes is too small for {tag!r}"
        document = _hand_written_pdf(tag, comment_line + b"%" + b"0" * (padding - 2) + b"\n")
        padding += size_bytes - len(document)
    assert len(document) == size_bytes
    return document


def _hand_written_pdf(tag: str, comments: bytes) -> bytes:
    title = tag.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << >> >>",
        b"<< /Title (" + title.encode() + b") >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + comments)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pypdf_pdf(tag: str, pages: int = 1) -> bytes:
    """A PDF written by pypdf (compressed cross-reference and all), titled with the tag."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": tag})
    return _written(writer)


def pdf_with_javascript(tag: str) -> bytes:
    """A PDF that runs JavaScript when opened (/OpenAction of type /JavaScript)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": tag})
    writer._root_object[NameObject("/OpenAction")] = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert('hi');")}
    )
    return _written(writer)


def pdf_with_attachment(tag: str) -> bytes:
    """A PDF carrying a file inside it (an /EmbeddedFiles name tree)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment("payload.exe", b"MZ" + tag.encode())
    return _written(writer)


def pdf_protected(tag: str, password: str) -> bytes:
    """A PDF encrypted with RC4 (which pypdf reads without extra libraries); "" opens without a password."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": tag})
    writer.encrypt(user_password=password, owner_password="owner-" + tag, algorithm="RC4-128")
    return _written(writer)


def _written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _colour(tag: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(tag.encode()).digest()
    return digest[0], digest[1], digest[2]


def png(tag: str, size: tuple[int, int] = (32, 24)) -> bytes:
    """A PNG written by Pillow, with the tag in a tEXt chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", tag)
    buffer = io.BytesIO()
    Image.new("RGB", size, _colour(tag)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def jpeg(tag: str, progressive: bool = False) -> bytes:
    """A JPEG written by Pillow, with the tag in a comment (COM) segment."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), _colour(tag)).save(buffer, "JPEG", comment=tag.encode(), progressive=progressive)
    return buffer.getvalue()


def zip_archive(tag: str) -> bytes:
    """A small ZIP holding one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", f"hello {tag}\n")
    return buffer.getvalue()


def zip_bomb(tag: str) -> bytes:
    """A ZIP of a few kilobytes that inflates to 50 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(f"bomb-{tag}.bin", b"\x00" * 50_000_000)
    return buffer.getvalue()


def tar_archive(tag: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = f"hello {tag}\n".encode()
        member = tarfile.TarInfo("readme.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header claims `width` x `height` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 100_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def png_with_chunk(tag: str, kind: bytes, data: bytes) -> bytes:
    """A valid PNG with one more (ancillary) chunk just before IEND."""
    image = png(tag)
    iend = image.rindex(b"IEND") - 4
    return image[:iend] + _chunk(kind, data) + image[iend:]


def pdf_with_zip_inside(tag: str) -> bytes:
    """A PDF, then a ZIP, then a trailer pointing back at the PDF's own cross-reference (an incremental
    update in form): it parses as a PDF, ends with `%%EOF`, and unzip opens it too."""
    document = pypdf_pdf(tag)
    match = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", document)
    assert match is not None, "pypdf ends its files with startxref and %%EOF"
    return document + zip_archive(tag) + b"\nstartxref\n" + match.group(1) + b"\n%%EOF\n"
