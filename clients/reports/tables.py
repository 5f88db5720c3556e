"""Exports as CSV and XLSX (issue 17, item 5; docs/adr/0028-kpi-report-and-exports.md).

Both carry a header row. Cents stay integers, and every `*_cents` column gets a `*_eur` column right after it,
written from the integer (never through a float in CSV; a number formatted `0.00` in XLSX). Dates are dates;
instants are UTC: ISO 8601 with `+00:00` in CSV, Excel date-times (which have no time zone) in XLSX, their
column named `*_utc` there. The first sheet of the XLSX is the table; a second sheet, `about`, says what it is
and as of when.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from ledger.exports import Cell, Column, Table

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell as XlsxCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EUR_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def eur_text(cents: int) -> str:
    """Integer cents as euros with two decimals, exactly (`-1234` -> `-12.34`)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros}.{rest:02d}"


def eur_name(column: Column) -> str:
    return column.name.removesuffix("_cents") + "_eur"


def header(columns: Iterable[Column], *, xlsx: bool = False) -> list[str]:
    names: list[str] = []
    for column in columns:
        if column.kind == "datetime" and xlsx:
            names.append(f"{column.name}_utc")
        else:
            names.append(column.name)
        if column.kind == "cents":
            names.append(eur_name(column))
    return names


def _csv_cells(columns: tuple[Column, ...], row: tuple[Cell, ...]) -> list[str]:
    cells: list[str] = []
    for column, value in zip(columns, row, strict=True):
        if value is None:
            cells.append("")
        elif isinstance(value, datetime):
            cells.append(value.astimezone(UTC).isoformat())
        elif isinstance(value, date):
            cells.append(value.isoformat())
        else:
            cells.append(str(value))
        if column.kind == "cents":
            cells.append("" if value is None else eur_text(int(value)))  # type: ignore[arg-type]
    return cells


def to_csv(table: Table) -> str:
    """The table as CSV (RFC 4180, CRLF line ends), header first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header(table.columns))
    for row in table.rows:
        writer.writerow(_csv_cells(table.columns, row))
    return out.getvalue()


def _xlsx_cells(sheet: WriteOnlyWorksheet, columns: tuple[Column, ...], row: tuple[Cell, ...]) -> list[XlsxCell]:
    from openpyxl.cell import WriteOnlyCell  # imported late: openpyxl costs every `cx` command ~0.2 s

    cells: list[XlsxCell] = []
    for column, value in zip(columns, row, strict=True):
        if isinstance(value, datetime):
            cell = WriteOnlyCell(sheet, value.astimezone(UTC).replace(tzinfo=None))
            cell.number_format = DATETIME_FORMAT
        elif isinstance(value, date):
            cell = WriteOnlyCell(sheet, datetime.combine(value, time(0)))
            cell.number_format = DATE_FORMAT
        else:
            cell = WriteOnlyCell(sheet, value)
        cells.append(cell)
        if column.kind == "cents":
            eur = WriteOnlyCell(sheet, None if value is None else int(value) / 100)  # type: ignore[arg-type]
            eur.number_format = EUR_FORMAT
            cells.append(eur)
    return cells


def to_xlsx(table: Table) -> bytes:
    """The table as an XLSX workbook: the sheet named after the export, then `about`."""
    from openpyxl import Workbook  # imported late: see _xlsx_cells

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(table.kind.value)
    sheet.append(header(table.columns, xlsx=True))
    for row in table.rows:
        sheet.append(_xlsx_cells(sheet, table.columns, row))
    about = workbook.create_sheet("about")
    about.append(["export", table.kind.value])
    about.append(["as_of_utc", table.as_of.astimezone(UTC).isoformat()])
    about.append(["rows", len(table.rows)])
    about.append(["definitions", "docs/adr/0028-kpi-report-and-exports.md"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def rows_as_dicts(table: Table) -> list[dict[str, Cell]]:
    """The rows keyed by column name (for tests and JSON)."""
    names = [c.name for c in table.columns]
    return [dict(zip(names, row, strict=True)) for row in table.rows]
