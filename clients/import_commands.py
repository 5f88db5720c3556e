"""`cx import` and `cx list`: the back office's bulk door and its view of every exchange.

An import reads a JSON list or a CSV of applications, validates every row first (a bad row is
reported with its line, row number, field and rule, and skipped), then starts the good ones. An
application already started with the same content counts as done, so running the same file again
starts nothing twice; a row whose id already started an exchange with a *different* application is a
conflict, named with the first field that differs. The file itself is read by clients/input_files.py's
rules (UTF-8 with or without a byte-order mark, at most 10 MiB, never a traceback). The exit status
(clients/exit_codes.py): CONFLICT (4) when any row conflicts, else REFUSED (1) when any row was refused,
USAGE (2) when the file cannot be read as a whole.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.progress import Progress
from rich.table import Table
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from clients.client import DuplicateApplication, ExchangeClient, ExchangeClientError, InvalidInput, parse
from clients.command import console, errors, exchange_client, fail, one_line, run
from clients.config import client_config
from clients.exit_codes import ExitCode
from clients.input_files import InputRefused, json_array_items, read_text, shown_path, with_lines
from clients.money import format_eur, format_optional_eur
from ledger.pool import postgres_pool
from schemas.exchange import ApplicationInput
from schemas.ids import exchange_workflow_id
from schemas.organisations import Organisation
from schemas.stages import TERMINAL_STAGES, Stage

MAX_ROWS = 10_000  # a limit on everything: a larger file is split by the back office
_SIDES = ("visitor", "host")
_ORGANISATION_FIELDS = tuple(Organisation.model_fields)
# The CSV header: the application's fields, with an organisation's fields as `visitor_<field>` / `host_<field>`.
CSV_COLUMNS = tuple(
    column
    for name in ApplicationInput.model_fields
    for column in ([f"{name}_{part}" for part in _ORGANISATION_FIELDS] if name in _SIDES else [name])
)
_FLAGS = ("member_of_profiled_cluster", "cluster_member", "host_agency_approved")
_NUMBERS = ("latitude", "longitude")


@dataclass
class ImportRow:
    """One application of the file: its place (`line` in the file, `row` counting applications from 1),
    its data shaped like ApplicationInput, and what is already known to be wrong with it."""

    row: int
    line: int
    data: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    # JSON imports: the item's own text, so that a refused field is named with its line.
    text: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # CSV: field path -> the column that holds it

    @property
    def application_id(self) -> str | None:
        value = self.data.get("application_id")
        return value if isinstance(value, str) else None


def read_rows(path: Path) -> list[ImportRow]:
    """The rows of a .json list or a .csv; `InputRefused` (one line) when the file cannot be read as a whole."""
    shown = shown_path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InputRefused(f"{shown}: the file must end in .json or .csv")
    return rows_of_text(read_text(path), suffix, shown)


def rows_of_text(text: str, suffix: str, shown: str) -> list[ImportRow]:
    """The rows of a file's text (`suffix` ".json" or ".csv"), as `read_rows` reads them (also `POST /imports`)."""
    rows = _json_rows(text, shown) if suffix == ".json" else _csv_rows(text, shown)
    if not rows:
        # An empty list or a header alone is a file saved before it was filled in, not an import of nothing.
        raise InputRefused(f"{shown}: no applications in the file")
    if len(rows) > MAX_ROWS:
        raise InputRefused(f"{shown}: more than {MAX_ROWS:,} applications; at most {MAX_ROWS:,} per import")
    return rows


def _json_rows(text: str, shown: str) -> list[ImportRow]:
    rows: list[ImportRow] = []
    for number, item in enumerate(json_array_items(text, shown), start=1):
        if len(rows) >= MAX_ROWS:
            rows.append(ImportRow(number, item.line, {}))  # one over is enough for read_rows to refuse
            break
        if isinstance(item.value, dict):
            rows.append(ImportRow(number, item.line, item.value, text=text[item.start : item.end]))
        else:
            rows.append(ImportRow(number, item.line, {}, ["must be a JSON object (one application)"]))
    return rows


def _csv_rows(text: str, shown: str) -> list[ImportRow]:
    first_line = text.split("\n", 1)[0]
    # Excel writes `;` between columns where the decimal separator is a comma (de, fr, ...).
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = _header(next(reader, []), shown)
        rows: list[ImportRow] = []
        line = reader.line_num + 1
        for cells in reader:
            if not cells:  # a blank line (Excel leaves some at the end)
                line = reader.line_num + 1
                continue
            number = len(rows) + 1
            if len(rows) >= MAX_ROWS:
                rows.append(ImportRow(number, line, {}))
                break
            if len(cells) != len(header):
                # Named by its id when that cell is there, so the report says which application to fix.
                known = dict(zip(header, cells, strict=False))
                named = {"application_id": known["application_id"]} if "application_id" in known else {}
                problem = f"{len(cells)} cells, but the header has {len(header)} columns"
                rows.append(ImportRow(number, line, named, [problem]))
            else:
                data, columns = _nest(dict(zip(header, cells, strict=True)))
                rows.append(ImportRow(number, line, data, columns=columns))
            line = reader.line_num + 1
    except csv.Error as error:
        raise InputRefused(f"{shown}: line {reader.line_num}: not valid CSV ({error})") from None
    return rows


def _header(cells: list[str], shown: str) -> list[str]:
    """The header's column names, each known and once; else `InputRefused` naming the column."""
    if not cells or not any(cell.strip() for cell in cells):
        raise InputRefused(f"{shown}: line 1: the first line must be the header (application_id, visitor_name, ...)")
    seen: set[str] = set()
    for position, column in enumerate(cells, start=1):
        where = f"{shown}: line 1, column {position}"
        if column not in CSV_COLUMNS:
            close = difflib.get_close_matches(column, CSV_COLUMNS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see `cx import --help` for the columns"
            raise InputRefused(f"{where}: unknown column {column[:64]!r}{hint}")
        if column in seen:
            raise InputRefused(f"{where}: column {column!r} appears twice")
        seen.add(column)
    return cells


def _nest(row: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A CSV row shaped like ApplicationInput (`visitor_<field>` nests), and which column holds each field."""
    nested: dict[str, Any] = {"visitor": {}, "host": {}}
    columns: dict[str, str] = {}
    for column, value in row.items():
        if value == "":
            continue
        side, _, name = column.partition("_")
        if side in _SIDES and name in _ORGANISATION_FIELDS:
            nested[side][name] = _typed(name, value)
            columns[f"{side}.{name}"] = column
        else:
            nested[column] = _typed(column, value)
    return nested, columns


def _typed(field: str, value: str) -> Any:
    """A CSV cell as the contract's JSON type. Everything in a CSV is text, and the contract is parsed
    strictly (`"50.06"` is not a number there), so flags and coordinates are converted here (`50,06` too);
    a cell that does not convert stays text, and validation then refuses it naming the field (`"yes"` is no
    flag, `"inf"` no coordinate)."""
    if field in _FLAGS:
        return {"true": True, "false": False}.get(value.strip().lower(), value)
    if field in _NUMBERS:
        # Excel writes "50,0647" where the decimal separator is a comma; a coordinate has no thousands.
        if value.count(",") == 1 and "." not in value:
            value = value.replace(",", ".")
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _described(row: ImportRow, refused: InvalidInput) -> list[str]:
    """Each refused field with its line (JSON) or its column (CSV)."""
    if row.text is not None:
        return with_lines(row.text, refused.errors, first_line=row.line)
    return [
        f"{name} (column {row.columns[name]}): {rule}" if name in row.columns else f"{name}: {rule}"
        for name, rule in refused.errors
    ]


async def recorded_application(client: ExchangeClient, application_id: str) -> ApplicationInput | None:
    """The application the exchange was started with, from the first event of its history (None when the
    recorded input cannot be decoded as an application)."""
    handle = client.temporal.get_workflow_handle(exchange_workflow_id(application_id))
    try:
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            decoded = await client.temporal.data_converter.decode(payloads, [ApplicationInput])
            first = decoded[0] if decoded else None
            return first if isinstance(first, ApplicationInput) else None
    except ApplicationError:
        return None  # a start input the strict converter refuses (the workflow refused it too)
    except RPCError as error:
        unreadable = f"{application_id}: the recorded application cannot be read ({error.message})"
        raise ExchangeClientError(unreadable) from None
    return None


def first_difference(recorded: Any, given: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first field (dotted path, in the contract's order) where two JSON-shaped values differ."""
    if isinstance(recorded, dict) and isinstance(given, dict):
        for key in [*recorded, *(k for k in given if k not in recorded)]:
            found = first_difference(recorded.get(key), given.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    return None if recorded == given else (path or "application", recorded, given)


def conflict_with(application: ApplicationInput, recorded: ApplicationInput | None) -> str | None:
    """None when `application` is the one recorded (a re-import); else the conflict, naming the field."""
    start = f"application_id {application.application_id!r} already started an exchange with a different application"
    if recorded is None:
        return f"{start} (the recorded one cannot be read to compare)"
    difference = first_difference(recorded.model_dump(mode="json"), application.model_dump(mode="json"))
    if difference is None:
        return None
    name, was, now = difference
    return f"{start}: {name} was {_short(was)}, this row has {_short(now)}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:40] + "..."


ReportItem = dict[str, Any]  # one row's outcome: row, line, application_id, outcome and, when refused, errors


def _item(row: ImportRow, outcome: str, problems: list[str] | None = None) -> ReportItem:
    item: ReportItem = {"row": row.row, "line": row.line, "application_id": row.application_id, "outcome": outcome}
    return item | ({"errors": problems} if problems else {})


def _validated(rows: list[ImportRow], report: list[ReportItem]) -> list[tuple[ImportRow, ApplicationInput]]:
    """The rows that parse as applications; every other row goes to the report as refused."""
    valid: list[tuple[ImportRow, ApplicationInput]] = []
    for row in rows:
        if row.problems:
            report.append(_item(row, "refused", row.problems))
            continue
        try:
            valid.append((row, parse(ApplicationInput, row.data)))
        except InvalidInput as refused:
            report.append(_item(row, "refused", _described(row, refused)))
    return valid


async def _start_all(
    client: ExchangeClient, valid: list[tuple[ImportRow, ApplicationInput]], report: list[ReportItem]
) -> None:
    """Start each valid application once; an id already used is done when the application is the same."""
    # A progress bar is for a person watching; to a pipe or a log it would only add a stray line.
    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as progress:
        task = progress.add_task("starting exchanges", total=len(valid))
        for row, application in valid:
            try:
                await client.start_exchange(application)
                report.append(_item(row, "started"))
            except DuplicateApplication:
                conflict = conflict_with(application, await recorded_application(client, application.application_id))
                if conflict is None:
                    report.append(_item(row, "already started"))
                else:
                    report.append(_item(row, "conflict", [conflict]))
            except InvalidInput as refused:
                report.append(_item(row, "refused", [str(refused)]))
            progress.advance(task)


def _print_report(report: list[ReportItem], path: Path, *, as_json: bool) -> None:
    """The report as JSON, or each refused row on its line and the counts per outcome."""
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    shown = shown_path(path)
    for item in report:
        if "errors" in item:
            where = f"{shown} line {item['line']} (row {item['row']}, {item['application_id']})"
            console.print(one_line(f"{where}: {item['outcome']}: " + "; ".join(item["errors"])))
    outcomes = ("started", "already started", "refused", "conflict")
    counts = {o: sum(1 for i in report if i["outcome"] == o) for o in outcomes}
    console.print(", ".join(f"{n} {o}" for o, n in counts.items()))


def import_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a .json list or a .csv of applications (UTF-8, at most 10 MiB)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the per-row report as JSON")] = False,
) -> None:
    """Start every valid application of a file once; report each refused row with its line, field and rule.

    A CSV has a header row of the application's fields, with `visitor_` / `host_` before an organisation's
    fields (application_id, visitor_name, visitor_country, host_latitude, start_date, goals, ...); Excel's
    "CSV UTF-8" (with a byte-order mark, `,` or `;` between columns) is read as it is. Importing a file
    again starts nothing twice; an id already used by a different application is a conflict (exit 4).

    Example: cx import applications.csv
    """
    try:
        rows = read_rows(path)
    except InputRefused as error:
        raise fail(str(error), ExitCode.USAGE) from None
    report: list[ReportItem] = []
    valid = _validated(rows, report)
    config = client_config(ctx)

    async def start_all() -> None:
        await _start_all(await exchange_client(config), valid, report)

    if valid:
        run(start_all)
    report.sort(key=lambda item: item["row"])
    _print_report(report, path, as_json=as_json)
    if any(item["outcome"] == "conflict" for item in report):
        raise typer.Exit(ExitCode.CONFLICT)
    if any(item["outcome"] == "refused" for item in report):
        raise typer.Exit(ExitCode.REFUSED)


def list_command(
    ctx: typer.Context,
    stage: Annotated[Stage | None, typer.Option("--stage", case_sensitive=False, help="only this stage")] = None,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    late: Annotated[bool, typer.Option("--late", help="only open exchanges past their next deadline")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="at most this many rows")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
) -> None:
    """List exchanges from the read model, filtered; `--late` is the ops view of missed deadlines.

    Example: cx list --late --partnership biginn
    """
    config = client_config(ctx)

    async def fetch() -> list[asyncpg.Record]:
        async with postgres_pool(config.database_url(), timeout_s=0, max_size=1) as pool:
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
    ctx: typer.Context,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
) -> None:
    """Open exchanges past their next deadline, the most overdue first (the same as `cx list --late`).

    Example: cx ops late --json
    """
    list_command(ctx, stage=None, partnership=partnership, late=True, limit=1000, as_json=as_json)
