"""`cx evidence add` and `cx evidence list` as subprocesses against a real Postgres: the item JSON to paste
into a report, the listing, and refusals as one line with exit 2 (never a traceback)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from schemas.exchange import EvidenceItem
from tests.clients.test_cli import ROOT
from tests.evidence.test_store import pdf, png, unique_tag

# Not mounted in `cx` yet (clients/cli.py is not this change's), so the sub-app runs as its own module,
# with the same environment as tests/clients/test_cli.py `cx()`; once mounted, these become `cx("evidence", ...)`.
EVIDENCE = [sys.executable, "-m", "clients.evidence_commands"]


def cx_evidence(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    environment |= {"CX_STATE_DIR": str(ROOT / ".cx-test-absent"), "COLUMNS": "200"} | env
    return subprocess.run([*EVIDENCE, *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one error line; `code` from clients/exit_codes.py (2 USAGE by default, 5 UNAVAILABLE)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


def test_add_prints_the_item_and_list_shows_it(database_url: str, tmp_path: Path) -> None:
    """`add` stores the file under CX_EVIDENCE_DIR and prints the EvidenceItem JSON; adding it again prints
    the same item; `list` shows it as a table and as JSON."""
    application_id, data = f"app-{unique_tag()}", pdf(unique_tag())
    document = tmp_path / "boarding-pass.pdf"
    document.write_bytes(data)
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(tmp_path / "store")}
    add = [application_id, str(document), "--kind", "boarding_pass", "--as", "visitor@example.org"]

    added = cx_evidence("add", *add, env=env)
    assert added.returncode == 0, added.stderr
    item = EvidenceItem.model_validate_json(added.stdout)
    digest = hashlib.sha256(data).hexdigest()
    assert item == EvidenceItem(name="boarding-pass.pdf", kind="boarding_pass", sha256=digest, size_bytes=len(data))
    assert (tmp_path / "store" / digest[:2] / digest).read_bytes() == data
    assert cx_evidence("add", *add, env=env).stdout == added.stdout

    table = cx_evidence("list", application_id, env=env)
    assert table.returncode == 0, table.stderr
    assert digest[:12] in table.stdout and "boarding-pass.pdf" in table.stdout and "application/pdf" in table.stdout
    listed = cx_evidence("list", application_id, "--json", env=env)
    [record] = json.loads(listed.stdout)
    assert (record["sha256"], record["uploaded_by"], record["size_bytes"]) == (digest, "visitor@example.org", len(data))


def test_add_refuses_in_one_line_naming_the_field(database_url: str, tmp_path: Path) -> None:
    """A disguised executable (refused with no database at all), an unknown kind and a missing file are each
    one error line naming the field, exit 2, no traceback; with no database configured, `list` says what to set."""
    application_id = f"app-{unique_tag()}"
    env = {"DATABASE_URL": database_url, "CX_EVIDENCE_DIR": str(tmp_path / "store")}
    disguised = tmp_path / "invoice.pdf"
    disguised.write_bytes(b"MZ\x90\x00" + b"\x00" * 60)
    image = tmp_path / "pass.png"
    image.write_bytes(png(unique_tag()))

    # No DATABASE_URL: a wrong file is refused before anything is contacted.
    no_database = {"CX_EVIDENCE_DIR": str(tmp_path / "store")}
    refused = one_line_error(
        cx_evidence("add", application_id, str(disguised), "--kind", "other", "--as", "v", env=no_database)
    )
    assert "media_type:" in refused and "Windows executable" in refused
    refused = one_line_error(cx_evidence("add", application_id, str(image), "--kind", "passport", "--as", "v", env=env))
    assert "'--kind': 'passport' is not one of" in refused
    missing = str(tmp_path / "nope.pdf")
    refused = one_line_error(cx_evidence("add", application_id, missing, "--kind", "other", "--as", "v", env=env))
    assert "file:" in refused and "nope.pdf" in refused and "does not exist" in refused
    assert json.loads(cx_evidence("list", application_id, "--json", env=env).stdout) == []

    refused = one_line_error(cx_evidence("list", application_id, env={}), code=5)
    assert "DATABASE_URL" in refused


def test_every_command_has_help_with_an_example() -> None:
    """`add --help` and `list --help` exit 0 and show an example line."""
    for command in ("add", "list"):
        result = cx_evidence(command, "--help", env={})
        assert result.returncode == 0 and "Example:" in result.stdout, result.stderr
