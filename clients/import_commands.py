"""`cx import` and `cx list`: the back office's bulk door and its view of every exchange.

An import reads a JSON list or a CSV of applications, validates every row first (a bad row is
reported with its row number, field and rule, and skipped), then starts the good ones; an application
already started counts as done, so running the same file again starts nothing twice. It exits
REFUSED (1) when any row was refused, USAGE (2) when the file cannot be read (clients/exit_codes.py).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.progress import Progress
from rich.table import Table

from clients.client import DuplicateApplication, InvalidInput, parse
from clients.command import console, errors, exchange_client, fail, load_settings, run
from clients.exit_codes import ExitCode
from clients.money import format_eur, format_optional_eur
from schemas.exchange import ApplicationInput
from schemas.stages import TERMINAL_STAGES, Stage
from workers.connect import postgres_pool
from workers.runtime import resolve_database_url

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
_FLAGS = ("member_of_profiled_cluster", "cluster_member", "host_agency_approved")
_NUMBERS = ("latitude", "longitude")


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
            nested[side][field] = _typed(field, value)
        else:
            nested[column] = _typed(column, value)
    return nested


def _typed(field: str, value: str) -> Any:
    """A CSV cell as the contract's JSON type. Everything in a CSV is text, and the contract is parsed
    strictly (`"50.06"` is not a number there), so flags and coordinates are converted here; a cell that
    does not convert stays text, and validation then refuses it naming the field (`"yes"` is no flag)."""
    if field in _FLAGS:
        return {"true": True, "false": False}.get(value.strip().lower(), value)
    if field in _NUMBERS:
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


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
        raise fail(str(error), ExitCode.USAGE) from None
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
    settings = load_settings()

    async def start_all() -> None:
        client = await exchange_client(settings)
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
        run(start_all)
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
        raise typer.Exit(ExitCode.REFUSED)


def list_command(
    stage: Annotated[Stage | None, typer.Option("--stage", case_sensitive=False, help="only this stage")] = None,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    late: Annotated[bool, typer.Option("--late", help="only open exchanges past their next deadline")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="at most this many rows")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
) -> None:
    """List exchanges from the read model, filtered; `--late` is the ops view of missed deadlines.

    Example: cx list --late --partnership biginn
    """
    settings = load_settings()

    async def fetch() -> list[asyncpg.Record]:
        async with postgres_pool(resolve_database_url(settings), timeout_s=0, max_size=1) as pool:
            rows: list[asyncpg.Record] = await pool.fetch(
                """SELECT application_id, stage, partnership_id, grant_cents, held_cents, paid_cents, next_deadline
                   FROM exchanges
                   WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR partnership_id = $2)
                     AND (NOT $3 OR (next_deadline < now() AND stage <> ALL($4::text[])))
                   ORDER BY next_deadline NULLS LAST, application_id LIMIT $5""",
                stage.value if stage else None,
                partnership,
                late,
                [s.value for s in TERMINAL_STAGES],
                limit,
            )
            return rows

    rows = run(fetch)
    if as_json:
        sys.stdout.write(json.dumps([dict(r) for r in rows], indent=2, default=str) + "\n")
        return
    table = Table(title="exchanges" + (" past a deadline" if late else ""))
    for column in ("application", "stage", "partnership", "grant", "held", "paid", "next deadline"):
        table.add_column(column, justify="right" if column in ("grant", "held", "paid") else "left")
    for r in rows:
        table.add_row(
            r["application_id"],
            r["stage"],
            r["partnership_id"],
            format_optional_eur(r["grant_cents"], "not priced yet"),
            format_eur(r["held_cents"]),
            format_eur(r["paid_cents"]),
            r["next_deadline"].isoformat(timespec="minutes") if r["next_deadline"] else "",
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
