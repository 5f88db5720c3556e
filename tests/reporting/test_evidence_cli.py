"""`cx evidence add` and `cx evidence list` as subprocesses against a real Postgres: the item JSON to paste
into a report, the listing, refusals as one line with their exit code (never a traceback), polyglots and
archives refused naming the rule, and no evidence for an application that started no exchange."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from clients.exit_codes import ExitCode
from schemas.exchange import EvidenceItem
from tests.clients.test_cli import cx
from tests.reporting.documents import jpeg, pdf, pdf_with_zip_inside, png, zip_archive, zip_bomb
from tests.reporting.test_store import files_in, started, unique_tag


def one_line_error(result: subprocess.CompletedProcess[str], code: int = ExitCode.USAGE) -> str:
    """The one error line; `code` from clients/exit_codes.py (2 USAGE by default)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


async def test_add_prints_the_item_and_list_shows_it(pg_pool: asyncpg.Pool, database_url: str, tmp_path: Path) -> None:
    """`add` stores the file under CX_EVIDENCE_DIR and prints the EvidenceItem JSON; adding it again prints
    the same item; `list` shows it as a table and as JSON."""
    application_id, data = await started(pg_pool), pdf(unique_tag())
    document = tmp_path / "boarding-pass.pdf"
    document.write_bytes(data)
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(tmp_path / "store")}
    add = [application_id, str(document), "--kind", "boarding_pass", "--as", "officer-olga"]

    added = cx("evidence", "add", *add, env=env)
    assert added.returncode == 0, added.stderr
    item = EvidenceItem.model_validate_json(added.stdout)
    digest = hashlib.sha256(data).hexdigest()
    assert item == EvidenceItem(name="boarding-pass.pdf", kind="boarding_pass", sha256=digest, size_bytes=len(data))
    assert (tmp_path / "store" / digest[:2] / digest).read_bytes() == data
    assert cx("evidence", "add", *add, env=env).stdout == added.stdout

    table = cx("evidence", "list", application_id, env=env)
    assert table.returncode == 0, table.stderr
    assert digest[:12] in table.stdout
    assert "boarding-pass.pdf" in table.stdout
    assert "application/pdf" in table.stdout
    listed = cx("evidence", "list", application_id, "--json", env=env)
    [record] = json.loads(listed.stdout)
    assert (record["sha256"], record["uploaded_by"], record["size_bytes"]) == (digest, "officer-olga", len(data))


async def test_add_refuses_in_one_line_naming_the_field(
    pg_pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """A disguised executable (refused with no database at all), an unknown kind, a missing file and a
    directory are each one error line naming the field, exit 2, no traceback; with no database configured,
    `list` says what to set."""
    application_id = await started(pg_pool)
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(tmp_path / "store")}
    disguised = tmp_path / "invoice.pdf"
    disguised.write_bytes(b"MZ\x90\x00" + b"\x00" * 60)
    image = tmp_path / "pass.png"
    image.write_bytes(png(unique_tag()))

    # No DATABASE_URL: a wrong file is refused before anything is contacted.
    no_database = {"CX_EVIDENCE_DIR": str(tmp_path / "store")}
    refused = one_line_error(
        cx("evidence", "add", application_id, str(disguised), "--kind", "other", "--as", "v", env=no_database)
    )
    assert "media_type:" in refused
    assert "Windows executable" in refused
    refused = one_line_error(
        cx("evidence", "add", application_id, str(image), "--kind", "passport", "--as", "v", env=env)
    )
    assert "'--kind': 'passport' is not one of" in refused
    missing = str(tmp_path / "nope.pdf")
    refused = one_line_error(cx("evidence", "add", application_id, missing, "--kind", "other", "--as", "v", env=env))
    assert "file:" in refused
    assert "nope.pdf" in refused
    assert "does not exist" in refused
    refused = one_line_error(
        cx("evidence", "add", application_id, str(tmp_path), "--kind", "other", "--as", "v", env=env)
    )
    assert "file:" in refused
    assert "not a regular file" in refused
    assert json.loads(cx("evidence", "list", application_id, "--json", env=env).stdout) == []

    refused = one_line_error(cx("evidence", "list", application_id, env={}), code=ExitCode.UNAVAILABLE)
    assert "DATABASE_URL" in refused


def _pdf_then_zip(tag: str) -> bytes:
    return pdf(tag) + zip_bomb(tag)


def _jpeg_then_php(tag: str) -> bytes:
    return jpeg(tag) + b"<?php system($_GET['c']); ?>\n"


@pytest.mark.parametrize(
    ("make", "file_name", "words"),
    [
        (_pdf_then_zip, "pass.pdf", "'pass.pdf': data after the end of the PDF (a ZIP archive at byte"),
        (_jpeg_then_php, "hotel.jpg", "'hotel.jpg': data after the end of the JPEG image (PHP code at byte"),
        (zip_archive, "invoice.pdf", "it is a ZIP archive (an Office document is one too: save it as PDF)"),
        (pdf_with_zip_inside, "ticket.pdf", "'ticket.pdf': contains a ZIP archive (its directory at byte"),
    ],
    ids=["pdf-then-zip-bomb", "jpeg-then-php", "zip-named-pdf", "zip-inside-a-pdf"],
)
async def test_polyglots_and_archives_are_refused_and_nothing_is_stored(
    pg_pool: asyncpg.Pool,
    database_url: str,
    tmp_path: Path,
    make: Callable[[str], bytes],
    file_name: str,
    words: str,
) -> None:
    """The files of issue 11 (a PDF followed by a zip bomb, a JPEG followed by PHP, a ZIP renamed .pdf, a ZIP
    hidden inside a PDF that still parses) are refused in one line naming the file and the rule, exit 2;
    nothing is recorded or stored."""
    application_id = await started(pg_pool)
    document = tmp_path / file_name
    document.write_bytes(make(unique_tag()))
    store = tmp_path / "store"
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(store)}
    result = cx("evidence", "add", application_id, str(document), "--kind", "other", "--as", "officer", env=env)
    refused = one_line_error(result)
    assert words in refused, refused
    assert json.loads(cx("evidence", "list", application_id, "--json", env=env).stdout) == []
    assert not store.exists() or files_in(store) == []


async def test_evidence_for_an_application_that_started_no_exchange_is_not_found(
    database_url: str, tmp_path: Path
) -> None:
    """A valid boarding pass for an application id that no exchange was started with: exit 3 (NOT_FOUND),
    one line naming the id, and nothing recorded or stored."""
    never = f"app-never-{unique_tag()}"
    document = tmp_path / "boarding-pass.pdf"
    document.write_bytes(pdf(unique_tag()))
    store = tmp_path / "store"
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(store)}
    result = cx("evidence", "add", never, str(document), "--kind", "boarding_pass", "--as", "officer", env=env)
    refused = one_line_error(result, code=ExitCode.NOT_FOUND)
    assert f"application_id: '{never}': no such exchange" in refused
    assert "nothing was stored" in refused
    assert json.loads(cx("evidence", "list", never, "--json", env=env).stdout) == []
    assert not store.exists() or files_in(store) == []


def test_every_command_has_help_with_an_example() -> None:
    """`add --help` and `list --help` exit 0 and show an example line."""
    for command in ("add", "list"):
        result = cx("evidence", command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Example:" in result.stdout, result.stderr
