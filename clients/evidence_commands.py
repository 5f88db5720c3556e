"""`cx evidence`: upload the evidence of a closing report (boarding passes, invoices) and list it.

`add` checks the file (size, type by content, and the whole structure of that type: a PDF must parse,
an image must decode, nothing may follow its end, no archive anywhere; rules/evidence_content.py),
refuses an application that started no exchange (exit 3), stores the file by its SHA-256 and prints the
`EvidenceItem` JSON to paste into the report's `evidence`. The store is `CX_EVIDENCE_DIR`, else
`<CX_STATE_DIR>/evidence`; the records are in the database (`DATABASE_URL` or the `make run` stack).

Who: `cx` is the back office's tool (it holds the database's credentials), so whoever runs it acts as an
officer and may upload for any exchange; `--as` records who did. Applicants upload through the REST API,
which lets them reach only the exchanges they submitted (docs/operations.md, "Evidence").
"""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.table import Table

from clients.command import CommandFailed, console, run
from clients.config import ClientConfig, client_config
from clients.exit_codes import ExitCode
from ledger.evidence import ApplicationUnknown, EvidenceRecord, list_evidence, store_evidence
from ledger.evidence_store import EvidenceStoreUnavailable
from ledger.pool import connect_postgres
from rules.evidence import EVIDENCE_KINDS, EvidenceRefused, check_evidence, read_upload
from schemas.exchange import EvidenceItem

evidence_app = typer.Typer(no_args_is_help=True, help="Evidence of closing reports: upload and list.")
# The kinds of the contract (EvidenceItem.kind) as a choice, so an unknown --kind is a usage error listing them.
EvidenceKind = StrEnum("EvidenceKind", {kind.upper(): kind for kind in EVIDENCE_KINDS})  # type: ignore[misc]


async def _connect(config: ClientConfig) -> asyncpg.Connection:
    return await connect_postgres(config.database_url(), timeout_s=0)


async def _add(config: ClientConfig, application_id: str, file: Path, name: str, kind: str, actor: str) -> EvidenceItem:
    store = config.evidence_store()
    # Check the file before contacting anything, so a wrong file is refused even with no database running.
    try:
        data = read_upload(file)
        await asyncio.to_thread(check_evidence, data, name, kind)
    except EvidenceRefused as error:
        raise CommandFailed(str(error), ExitCode.USAGE) from None
    conn = await _connect(config)
    try:
        return await store_evidence(
            conn, store, application_id=application_id, path_or_bytes=data, name=name, kind=kind, uploaded_by=actor
        )
    except ApplicationUnknown as error:
        raise CommandFailed(f"{error}; nothing was stored", ExitCode.NOT_FOUND) from None
    except EvidenceRefused as error:
        raise CommandFailed(str(error), ExitCode.USAGE) from None
    except EvidenceStoreUnavailable as error:
        raise CommandFailed(f"evidence store: {error}; nothing was recorded", ExitCode.UNAVAILABLE) from None
    finally:
        await conn.close()


async def _list(config: ClientConfig, application_id: str) -> list[EvidenceRecord]:
    conn = await _connect(config)
    try:
        return await list_evidence(conn, application_id)
    finally:
        await conn.close()


@evidence_app.command("add")
def add(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application the report belongs to")],
    file: Annotated[Path, typer.Argument(help="the document: PDF, PNG or JPEG, at most 10 MiB")],
    kind: Annotated[EvidenceKind, typer.Option("--kind", case_sensitive=False, help="what the document proves")],
    actor: Annotated[str, typer.Option("--as", help="who uploads (actor id)")],
    name: Annotated[str | None, typer.Option("--name", help="the label in the report; default: the file name")] = None,
) -> None:
    """Store one evidence file for an exchange and print its EvidenceItem JSON for the report.

    The file must be a whole PDF, PNG or JPEG and nothing else (no data after its end, no archive, no
    JavaScript or embedded file in a PDF). Uploading the same file again prints the same item and stores
    nothing new; an application id that started no exchange is refused (exit 3).

    Example: cx evidence add app-42 boarding-pass.pdf --kind boarding_pass --as visitor@example.org
    """
    config = client_config(ctx)
    item = run(lambda: _add(config, application_id, file, name or file.name, kind.value, actor))
    sys.stdout.write(item.model_dump_json() + "\n")


@evidence_app.command("list")
def list_command(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application")],
    as_json: Annotated[bool, typer.Option("--json", help="print the records as JSON")] = False,
) -> None:
    """List the evidence files uploaded for an application, oldest first.

    Example: cx evidence list app-42 --json
    """
    config = client_config(ctx)
    records = run(lambda: _list(config, application_id))
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n")
        return
    if not records:
        console.print(f"no evidence uploaded for {application_id}")
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
