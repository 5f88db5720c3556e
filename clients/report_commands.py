"""`cx report kpis` and `cx export` (issue 17, items 3 and 5; docs/adr/0028-kpi-report-and-exports.md).

`cx report kpis --from D --to D` prints the Commission's KPIs for the window (dates inclusive, UTC) as a
table, CSV, JSON or one self-contained HTML page. `cx export exchanges|transfers|payment-orders` writes the
back office's and auditors' tables as they stood at `--as-of`, as CSV or XLSX. Both read Postgres only (the
read model and the ledger); both refuse bad input naming the field and the rule, with exit code 2.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date
from pathlib import Path
from typing import Annotated

import typer

from clients.command import CommandFailed, console, fail, run
from clients.config import ClientConfig, client_config
from clients.exit_codes import ExitCode
from clients.reports.inputs import (
    EXPORT_FORMATS,
    KPI_FORMATS,
    InputRefused,
    parse_as_of,
    parse_format,
    parse_kind,
    parse_window,
)
from clients.reports.kpi_pages import kpi_csv, kpi_html, kpi_table
from clients.reports.tables import to_csv, to_xlsx
from ledger.exports import ExportKind, ExportTooLarge, Table, export_table
from ledger.kpis import KpiReport, ReportWindowError, programme_kpis
from ledger.pool import postgres_pool

report_app = typer.Typer(no_args_is_help=True, help="Reports for the Commission.")


def render_kpis(report: KpiReport, output_format: str) -> str:
    """The report in one of KPI_FORMATS."""
    if output_format == "csv":
        return kpi_csv(report)
    if output_format == "html":
        return kpi_html(report)
    if output_format == "json":
        return report.model_dump_json(indent=2) + "\n"
    return kpi_table(report)


def _write(output: Path | None, content: str | bytes, *, private: bool = False) -> None:
    """To stdout, or to `output`; `private` files (row-level exports name finance's people) are created 0600."""
    data = content.encode() if isinstance(content, str) else content
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


async def _kpis(config: ClientConfig, window: tuple[date, date]) -> KpiReport:
    date_from, date_to = window
    async with postgres_pool(config.database_url(), timeout_s=0, max_size=2) as pool:
        try:
            return await programme_kpis(pool, date_from, date_to)
        except ReportWindowError as error:
            raise CommandFailed(str(error), ExitCode.USAGE) from None


@report_app.command("kpis")
def kpis(
    ctx: typer.Context,
    date_from: Annotated[str, typer.Option("--from", help="first day of the window, YYYY-MM-DD (UTC, inclusive)")],
    date_to: Annotated[str, typer.Option("--to", help="last day of the window, YYYY-MM-DD (UTC, inclusive)")],
    output_format: Annotated[str, typer.Option("--format", help="table, csv, html or json")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="write here instead of stdout")] = None,
) -> None:
    """The Commission's KPIs per partnership and in total: exchanges applied, eligible, funded, completed and
    paid; euros held and paid; SME share; days from application to payment; late payments; country pairs.

    Example: cx report kpis --from 2026-01-01 --to 2026-03-31 --format html --output q1.html
    """
    try:
        window = parse_window(date_from, date_to)
        chosen = parse_format("format", output_format, KPI_FORMATS)
    except InputRefused as error:
        raise fail(f"--{error.field}: {error.rule}", ExitCode.USAGE) from None
    config = client_config(ctx)
    report = run(lambda: _kpis(config, window))
    _write(output, render_kpis(report, chosen))
    if output is not None:
        console.print(f"KPIs {report.date_from} to {report.date_to} ({chosen}) written to {output}")


async def _export(config: ClientConfig, kind: ExportKind, as_of: str | None) -> Table:
    async with postgres_pool(config.database_url(), timeout_s=0, max_size=2) as pool:
        now = await pool.fetchval("SELECT now()")
        try:
            instant = parse_as_of(as_of, now)
        except InputRefused as error:
            raise CommandFailed(f"--as-of: {error.rule}", ExitCode.USAGE) from None
        try:
            return await export_table(pool, kind, instant)
        except ExportTooLarge as error:
            raise CommandFailed(str(error), ExitCode.USAGE) from None


def export(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="exchanges, transfers or payment-orders")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="an instant with its offset, or a date (its end, UTC); default: now"),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", help="write here instead of stdout (xlsx: required)")
    ] = None,
) -> None:
    """Write exchanges, ledger transfers (one row per entry) or payment orders as they stood at --as-of.

    Cents are integers with a EUR column beside each; dates are dates; instants UTC. Reads only.

    Example: cx export transfers --as-of 2026-03-31 --format xlsx --output transfers-q1.xlsx
    """
    try:
        chosen_kind = parse_kind(kind)
        chosen = parse_format("format", output_format, EXPORT_FORMATS)
    except InputRefused as error:
        name = error.field if error.field == "kind" else f"--{error.field}"
        raise fail(f"{name}: {error.rule}", ExitCode.USAGE) from None
    if chosen == "xlsx" and output is None:
        raise fail("--output: required with --format xlsx (a workbook is not written to a terminal)", ExitCode.USAGE)
    config = client_config(ctx)
    table = run(lambda: _export(config, chosen_kind, as_of))
    _write(output, to_xlsx(table) if chosen == "xlsx" else to_csv(table), private=True)
    if output is not None:
        shown = table.as_of.astimezone(UTC).isoformat()
        console.print(f"{len(table.rows)} {chosen_kind.value} rows as of {shown} written to {output}")
