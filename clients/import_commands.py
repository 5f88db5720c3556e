"""`cx import` and `cx list`: the back office's bulk door and its view of every exchange.

An import reads a JSON list or a CSV of applications, validates every row first (a bad row is
reported with its row number, field and rule, and skipped), then starts the good ones; an application
already started counts as done, so running the same file again starts nothing twice.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from clients.client import DuplicateApplication, ExchangeClient, InvalidInput, parse
from schemas.exchange import ApplicationInput
from schemas.stages import TERMINAL_STAGES
from workers.runtime import StackNotFound, resolve_database_url, resolve_temporal_address
from workers.settings import Settings

console = Console()
errors = Console(stderr=True)
MAX_ROWS = 10_000  # a limit on everything: a larger file is split by the back office
_ORGANISATION_FIELDS = (
    "organisation_id",
    "name",
    "type",
    "country",
    "latitude",
    "longitude",
    "member_of_profiled_cluster",
    "cluster_member",
)
_ORGANISATION_FLAGS = ("member_of_profiled_cluster", "cluster_member")


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows as dicts shaped like ApplicationInput; CSV columns `visitor_<field>` / `host_<field>` nest."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise ValueError(f"{path}: a JSON import is a list of application objects")
        rows: list[dict[str, Any]] = data
    elif path.suffix.lower() == ".csv":
        rows = [_nest(row) for row in csv.DictReader(text.splitlines())]
    else:
        raise ValueError(f"{path}: the file must end in .json or .csv")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{path}: {len(rows)} rows; at most {MAX_ROWS} per import")
    return rows


def _nest(row: dict[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {"visitor": {}, "host": {}}
    for column, value in row.items():
        if value is None or value == "":
            continue
        side, _, field = column.partition("_")
        if side in ("visitor", "host") and field in _ORGANISATION_FIELDS:
            nested[side][field] = value.lower() == "true" if field in _ORGANISATION_FLAGS else value
        else:
            nested[column] = value.lower() == "true" if column == "host_agency_approved" else value
    return nested


def import_command(
    path: Annotated[Path, typer.Argument(help="a .json list or a .csv of applications")],
    as_json: Annotated[bool, typer.Option("--json", help="print the per-row report as JSON")] = False,
) -> None:
    """Start every valid application of a file once; report each refused row with its field and rule.

    Example: cx import applications.csv
    """
    try:
        rows = read_rows(path)
    except ValueError as error:
        raise _fail(str(error)) from None
    report: list[dict[str, Any]] = []
    valid: list[tuple[int, ApplicationInput]] = []
    for number, row in enumerate(rows, start=1):
        try:
            valid.append((number, parse(ApplicationInput, row)))
        except InvalidInput as refused:
            report.append(
                {
                    "row": number,
                    "application_id": row.get("application_id"),
                    "outcome": "refused",
                    "errors": [f"{field}: {message}" for field, message in refused.errors],
                }
            )
    settings = Settings.from_env()

    async def start_all() -> None:
        client = await ExchangeClient.connect(
            resolve_temporal_address(settings), settings.temporal_namespace, settings.task_queue
        )
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task("starting exchanges", total=len(valid))
            for number, application in valid:
                try:
                    await client.start_exchange(application)
                    outcome = "started"
                except DuplicateApplication:
                    outcome = "already started"
                except InvalidInput as refused:
                    report.append(
                        {
                            "row": number,
                            "application_id": application.application_id,
                            "outcome": "refused",
                            "errors": [str(refused)],
                        }
                    )
                    progress.advance(task)
                    continue
                report.append({"row": number, "application_id": application.application_id, "outcome": outcome})
                progress.advance(task)

    if valid:
        try:
            asyncio.run(start_all())
        except (StackNotFound, RuntimeError, OSError) as error:
            raise _fail(str(error)) from None
    report.sort(key=lambda item: item["row"])
    refused_rows = [item for item in report if item["outcome"] == "refused"]
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for item in refused_rows:
            console.print(
                f"row {item['row']} ({item['application_id']}): " + "; ".join(item["errors"]), highlight=False
            )
        counts = {o: sum(1 for i in report if i["outcome"] == o) for o in ("started", "already started", "refused")}
        console.print(", ".join(f"{n} {o}" for o, n in counts.items()), highlight=False)
    if refused_rows:
        raise typer.Exit(1)


def list_command(
    stage: Annotated[str | None, typer.Option("--stage", help="only this stage, e.g. REVIEW")] = None,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    late: Annotated[bool, typer.Option("--late", help="only open exchanges past their next deadline")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="at most this many rows")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
) -> None:
    """List exchanges from the read model, filtered; `--late` is the ops view of missed deadlines.

    Example: cx list --late --partnership biginn
    """
    settings = Settings.from_env()

    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(resolve_database_url(settings))
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                """SELECT application_id, stage, partnership_id, grant_cents, held_cents, paid_cents, next_deadline
                   FROM exchanges
                   WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR partnership_id = $2)
                     AND (NOT $3 OR (next_deadline < now() AND stage <> ALL($4::text[])))
                   ORDER BY next_deadline NULLS LAST, application_id LIMIT $5""",
                stage.upper() if stage else None,
                partnership,
                late,
                [s.value for s in TERMINAL_STAGES],
                limit,
            )
            return rows
        finally:
            await conn.close()

    try:
        rows = asyncio.run(fetch())
    except (StackNotFound, OSError, asyncpg.PostgresError) as error:
        raise _fail(str(error)) from None
    if as_json:
        sys.stdout.write(json.dumps([dict(r) for r in rows], indent=2, default=str) + "\n")
        return
    table = Table(title="exchanges" + (" past a deadline" if late else ""))
    for column in ("application", "stage", "partnership", "grant", "held", "paid", "next deadline"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["application_id"],
            r["stage"],
            r["partnership_id"],
            str(r["grant_cents"] or ""),
            str(r["held_cents"]),
            str(r["paid_cents"]),
            str(r["next_deadline"] or ""),
        )
    console.print(table)


def late_command(
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
) -> None:
    """Open exchanges past their next deadline, the most overdue first (the same as `cx list --late`).

    Example: cx ops late --json
    """
    list_command(stage=None, partnership=partnership, late=True, limit=1000, as_json=as_json)
