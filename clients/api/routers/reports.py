"""The KPI report and the exports over HTTP (issue 17, items 3 and 5; docs/adr/0028-kpi-report-and-exports.md).

`GET /reports/kpis?from=&to=&format=json|csv|html` is `cx report kpis`; `GET /exports/{kind}?as_of=&format=csv|xlsx`
is `cx export`. Both read Postgres only; the files come with their content type and a Content-Disposition naming
them. Bad input is a 422 Problem naming the parameter and the rule. Who may call them: docs/security.md.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from clients.api.context import Engine, Permit, permitted
from clients.api.openapi import JSON
from clients.api.problems import ProblemError, invalid, problem_responses
from clients.reports.inputs import InputRefused, check_window, parse_as_of
from clients.reports.kpi_pages import HTML_MEDIA_TYPE, kpi_csv, kpi_html
from clients.reports.tables import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx
from ledger.exports import ExportKind, ExportTooLarge, export_table
from ledger.kpis import TOTAL, CountryPair, KpiReport, PartnershipKpis, programme_kpis

router = APIRouter(tags=["reports"])


def _kpis_example() -> dict[str, Any]:
    row = PartnershipKpis(
        partnership_id="photonics4i",
        applied=12,
        eligible=11,
        funded=10,
        completed=8,
        paid=7,
        allocated_cents=46_700_000,
        held_cents=285_000,
        paid_cents=665_000,
        paid_to_date_cents=1_235_000,
        sme_applied=5,
        sme_share_percent=41.7,
        days_to_payment_median=61.5,
        days_to_payment_p90=74.0,
        late_payments=1,
        overdue_unpaid=0,
    )
    return KpiReport(
        date_from=date(2026, 1, 1),
        date_to=date(2026, 3, 31),
        generated_at=datetime(2026, 4, 1, 8, 0, tzinfo=UTC),
        partnerships=[row],
        total=row.model_copy(update={"partnership_id": TOTAL}),
        country_pairs=[CountryPair(visitor_country="PL", host_country="FR", applied=7, paid=4)],
    ).model_dump(mode="json")


KPIS_EXAMPLE = _kpis_example()
CSV_KPIS_EXAMPLE = (
    "date_from,date_to,partnership_id,applied,eligible,funded,completed,paid,allocated_cents,allocated_eur,...\r\n"
    "2026-01-01,2026-03-31,photonics4i,12,11,10,8,7,46700000,467000.00,...\r\n"
)
CSV_EXPORT_EXAMPLE = (
    "payment_order_id,application_id,partnership_id,amount_cents,amount_eur,hold_id,...\r\n"
    "po-app-2026-0042,app-2026-0042,photonics4i,95000,950.00,17,...\r\n"
)
# The shape only; parse_as_of names what is wrong with a value of this shape (no offset, in the future).
AS_OF_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$"


@router.get(
    "/reports/kpis",
    response_model=KpiReport,
    operation_id="getKpiReport",
    summary="The Commission's KPIs per partnership and in total for a window of days (UTC, inclusive)",
    responses={
        200: {
            "description": "the report: JSON, CSV (a row per partnership, then TOTAL) or one self-contained HTML page",
            "content": {
                JSON: {"example": KPIS_EXAMPLE},
                "text/csv": {"schema": {"type": "string"}, "example": CSV_KPIS_EXAMPLE},
                "text/html": {"schema": {"type": "string"}, "example": "<!DOCTYPE html><html lang='en'>...</html>"},
            },
        },
        **problem_responses(401, 403, 422, 503),
    },
)
async def kpi_report(
    api: Engine,
    permit: Annotated[Permit, permitted("getKpiReport")],
    date_from: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD (UTC, inclusive)")],
    date_to: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD (UTC, inclusive)")],
    output_format: Annotated[Literal["json", "csv", "html"], Query(alias="format")] = "json",
) -> Any:
    try:
        check_window(date_from, date_to)
    except InputRefused as error:
        raise invalid([(error.field, error.rule)]) from None
    report = await programme_kpis(api.pool, date_from, date_to)
    name = f"cx-kpis-{date_from.isoformat()}-{date_to.isoformat()}"
    if output_format == "csv":
        return _file(kpi_csv(report).encode(), CSV_MEDIA_TYPE, f"{name}.csv")
    if output_format == "html":
        return Response(kpi_html(report), media_type=HTML_MEDIA_TYPE, headers={"Cache-Control": "no-store"})
    return report


def _file(content: bytes, media_type: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return Response(content, media_type=media_type, headers=headers)


@router.get(
    "/exports/{kind}",
    operation_id="exportTable",
    summary="Exchanges, ledger transfers (one row per entry) or payment orders as they stood at an instant",
    response_class=Response,
    responses={
        200: {
            "description": "the table as a file (Content-Disposition names it): CSV or XLSX, a header row first",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": CSV_EXPORT_EXAMPLE},
                XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}, "example": "(an XLSX workbook)"},
            },
        },
        **problem_responses(401, 403, 422, 503),
    },
)
async def export(
    api: Engine,
    permit: Annotated[Permit, permitted("exportTable")],
    kind: Annotated[ExportKind, Path(description="exchanges, transfers or payment-orders")],
    as_of: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=AS_OF_PATTERN,
            description="an ISO 8601 instant with its offset, or a date (its end, UTC); default: now",
        ),
    ] = None,
    output_format: Annotated[Literal["csv", "xlsx"], Query(alias="format")] = "csv",
) -> Response:
    now = await api.pool.fetchval("SELECT now()")
    try:
        instant = parse_as_of(as_of, now)
    except InputRefused as error:
        raise invalid([(error.field, error.rule)]) from None
    try:
        table = await export_table(api.pool, kind, instant)
    except ExportTooLarge as error:
        raise ProblemError(422, "Export too large", str(error), [("as_of", str(error))]) from None
    stamp = instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"cx-{kind.value}-{stamp}.{output_format}"
    if output_format == "xlsx":
        return _file(to_xlsx(table), XLSX_MEDIA_TYPE, filename)
    return _file(to_csv(table).encode(), CSV_MEDIA_TYPE, filename)
