"""`cx evidence`: upload the evidence of a closing report (boarding passes, invoices) and list it.

`add` checks the file (size, and type by content), stores it by its SHA-256 and prints the
`EvidenceItem` JSON to paste into the report's `evidence`. The store is `CX_EVIDENCE_DIR`, else
`<CX_STATE_DIR>/evidence`; the records are in the database (`DATABASE_URL` or the `make run` stack).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from activities.evidence import (
    EVIDENCE_KINDS,
    EvidenceRecord,
    EvidenceRefused,
    EvidenceStore,
    check_evidence,
    list_evidence,
    read_upload,
    store_evidence,
)
from schemas.exchange import EvidenceItem
from workers.runtime import StackNotFound, resolve_database_url
from workers.settings import Settings

evidence_app = typer.Typer(no_args_is_help=True, help="Evidence of closing reports: upload and list.")
console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    # soft_wrap: the error stays one line whatever the terminal width, for people and scripts alike.
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


async def _connect(settings: Settings) -> asyncpg.Connection:
    database_url = resolve_database_url(settings)
    try:
        return await asyncpg.connect(database_url)
    except OSError as error:
        raise OSError(f"cannot reach the database: {error}") from None


async def _add(settings: Settings, application_id: str, file: Path, name: str, kind: str, actor: str) -> EvidenceItem:
    store = EvidenceStore.from_settings(settings)
    # Check the file before contacting anything, so a wrong file is refused even with no database running.
    data = read_upload(file)
    check_evidence(data, name, kind)
    conn = await _connect(settings)
    try:
        return await store_evidence(
            conn, store, application_id=application_id, path_or_bytes=data, name=name, kind=kind, uploaded_by=actor
        )
    finally:
        await conn.close()


async def _list(settings: Settings, application_id: str) -> list[EvidenceRecord]:
    conn = await _connect(settings)
    try:
        return await list_evidence(conn, application_id)
    finally:
        await conn.close()


@evidence_app.command("add")
def add(
    application_id: Annotated[str, typer.Argument(help="the application the report belongs to")],
    file: Annotated[Path, typer.Argument(help="the document: PDF, PNG or JPEG, at most 10 MiB")],
    kind: Annotated[str, typer.Option("--kind", help=f"one of {', '.join(EVIDENCE_KINDS)}")],
    actor: Annotated[str, typer.Option("--as", help="who uploads (actor id)")],
    name: Annotated[str | None, typer.Option("--name", help="the label in the report; default: the file name")] = None,
) -> None:
    """Store one evidence file for an application and print its EvidenceItem JSON for the report.

    Uploading the same file again prints the same item and stores nothing new.

    Example: cx evidence add app-42 boarding-pass.pdf --kind boarding_pass --as visitor@example.org
    """
    settings = Settings.from_env()
    try:
        item = asyncio.run(_add(settings, application_id, file, name or file.name, kind, actor))
    except (EvidenceRefused, StackNotFound, OSError, asyncpg.PostgresError) as error:
        raise _fail(str(error)) from None
    sys.stdout.write(item.model_dump_json() + "\n")


@evidence_app.command("list")
def list_command(
    application_id: Annotated[str, typer.Argument(help="the application")],
    as_json: Annotated[bool, typer.Option("--json", help="print the records as JSON")] = False,
) -> None:
    """List the evidence files uploaded for an application, oldest first.

    Example: cx evidence list app-42 --json
    """
    try:
        records = asyncio.run(_list(Settings.from_env(), application_id))
    except (StackNotFound, OSError, asyncpg.PostgresError) as error:
        raise _fail(str(error)) from None
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n")
        return
    if not records:
        console.print(f"no evidence uploaded for {application_id}", highlight=False)
        return
    table = Table("sha256", "kind", "name", "type", "size (bytes)", "stored at", "uploaded by")
    for r in records:
        table.add_row(
            r.sha256[:12],
            r.kind,
            r.name,
            r.media_type,
            f"{r.size_bytes:,}",
            r.stored_at.isoformat(timespec="seconds"),
            r.uploaded_by,
        )
    console.print(table)


if __name__ == "__main__":
    # Runnable on its own (`python -m clients.evidence_commands`) until it is mounted as `cx evidence`.
    evidence_app()
