"""The KPI report for people: a terminal table, CSV and one self-contained HTML page (issue 17, item 3).

The HTML page carries everything it shows: its style inline, its charts drawn by matplotlib (Agg, no GUI) as
inline SVG with their text as text. It loads nothing from anywhere, so it can be mailed, archived or opened
offline (tests/reports/ fail on any `src` or `href` to another host). Definitions of each figure:
ledger/kpis.py and docs/adr/0028-kpi-report-and-exports.md.
"""

from __future__ import annotations

import csv
import html
import io
import re
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table as RichTable

from clients.reports.tables import eur_text
from ledger.kpis import KpiReport, PartnershipKpis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HTML_MEDIA_TYPE = "text/html; charset=utf-8"
FUNNEL = ("applied", "eligible", "funded", "completed", "paid")
MONEY = ("allocated_cents", "held_cents", "paid_cents", "paid_to_date_cents")
OTHER = ("sme_applied", "sme_share_percent", "days_to_payment_median", "days_to_payment_p90")
LATE = ("late_payments", "overdue_unpaid")
MAX_CHART_PARTNERSHIPS = 40  # beyond this the bars are unreadable; the tables still list every partnership
COLOURS = ("#1f4e79", "#2e75b6", "#70ad47", "#ffc000", "#c00000")


def _optional(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _rows(report: KpiReport) -> list[PartnershipKpis]:
    return [*report.partnerships, report.total]


def csv_header() -> list[str]:
    money = [name for column in MONEY for name in (column, column.removesuffix("_cents") + "_eur")]
    return ["date_from", "date_to", "partnership_id", *FUNNEL, *money, *OTHER, *LATE]


def kpi_csv(report: KpiReport) -> str:
    """One row per partnership and a last row TOTAL, header first; cents as integers with a EUR column each."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csv_header())
    for row in _rows(report):
        money = [cell for column in MONEY for cell in (getattr(row, column), eur_text(getattr(row, column)))]
        writer.writerow(
            [
                report.date_from.isoformat(),
                report.date_to.isoformat(),
                row.partnership_id,
                *(getattr(row, name) for name in FUNNEL),
                *money,
                row.sme_applied,
                _optional(row.sme_share_percent),
                _optional(row.days_to_payment_median),
                _optional(row.days_to_payment_p90),
                row.late_payments,
                row.overdue_unpaid,
            ]
        )
    return out.getvalue()


def kpi_table(report: KpiReport, width: int = 200) -> str:
    """The report as text tables (rich): the figures per partnership and in total, then the country pairs."""
    console = Console(file=io.StringIO(), width=width, highlight=False, markup=False, color_system=None)
    table = RichTable(title=f"ClusterXchange KPIs {report.date_from} to {report.date_to} (UTC)")
    for name in ("partnership", *FUNNEL, "held EUR", "paid EUR", "SME %", "days median", "days p90", "late", "overdue"):
        table.add_column(name, justify="left" if name == "partnership" else "right")
    for row in _rows(report):
        table.add_row(
            row.partnership_id,
            *(str(getattr(row, name)) for name in FUNNEL),
            eur_text(row.held_cents),
            eur_text(row.paid_cents),
            _optional(row.sme_share_percent),
            _optional(row.days_to_payment_median),
            _optional(row.days_to_payment_p90),
            str(row.late_payments),
            str(row.overdue_unpaid),
        )
    console.print(table)
    pairs = RichTable(title="Country pairs (visitor -> host)")
    for name in ("visitor", "host", "applied", "paid"):
        pairs.add_column(name, justify="left" if name in ("visitor", "host") else "right")
    for pair in report.country_pairs:
        pairs.add_row(pair.visitor_country, pair.host_country, str(pair.applied), str(pair.paid))
    console.print(pairs)
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


# --- the HTML page -------------------------------------------------------------------------------------------


def _svg(figure: Figure) -> str:
    """The figure as an inline <svg> element: text kept as text, no XML prolog, no metadata (it names URLs)."""
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


def _figure(height: float) -> Figure:
    # Imported here, not at the top: matplotlib costs every `cx` command ~0.4 s to import, and only pages need it.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, height), dpi=96, layout="constrained")
    figure.patch.set_facecolor("white")
    return figure


def funnel_chart(report: KpiReport) -> str:
    """Grouped bars: per partnership, the exchanges applied, eligible, funded, completed and paid."""
    rows = report.partnerships[:MAX_CHART_PARTNERSHIPS] or [report.total]
    figure = _figure(max(2.5, 0.45 * len(rows) + 1.2))
    axes = figure.add_subplot()
    bar = 0.8 / len(FUNNEL)
    for index, name in enumerate(FUNNEL):
        positions = [i + (index - 2) * bar for i in range(len(rows))]
        axes.barh(positions, [getattr(r, name) for r in rows], height=bar, label=name, color=COLOURS[index])
    axes.set_yticks(range(len(rows)), [r.partnership_id for r in rows])
    axes.invert_yaxis()
    axes.set_xlabel("exchanges")
    from matplotlib.ticker import MaxNLocator  # imported late: see _figure

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    axes.set_title("Exchanges per partnership")
    return _svg(figure)


def money_chart(report: KpiReport) -> str:
    """Stacked bars, one per partnership, as long as its budget: paid to date, held (open holds) and available,
    in EUR at the window's end."""
    rows = report.partnerships[:MAX_CHART_PARTNERSHIPS] or [report.total]
    figure = _figure(max(2.5, 0.35 * len(rows) + 1.2))
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    paid = [r.paid_to_date_cents / 100 for r in rows]
    held = [r.held_cents / 100 for r in rows]
    available = [max(0, r.allocated_cents - r.held_cents - r.paid_to_date_cents) / 100 for r in rows]
    axes.barh(positions, paid, height=0.6, label="paid to date", color="#1f4e79")
    axes.barh(positions, held, height=0.6, left=paid, label="held", color="#ffc000")
    lefts = [p + h for p, h in zip(paid, held, strict=True)]
    axes.barh(positions, available, height=0.6, left=lefts, label="available", color="#d9d9d9")
    axes.set_yticks(positions, [r.partnership_id for r in rows])
    axes.invert_yaxis()
    axes.set_xlabel("EUR")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    axes.set_title("Budgets at the window's end: paid, held, available")
    return _svg(figure)


def pairs_chart(report: KpiReport) -> str:
    """A heat map of exchanges applied per visitor country (rows) and host country (columns)."""
    visitors = sorted({p.visitor_country for p in report.country_pairs})
    hosts = sorted({p.host_country for p in report.country_pairs})
    if not visitors:
        return "<p>No exchanges applied in the window.</p>"
    grid = [[0] * len(hosts) for _ in visitors]
    for pair in report.country_pairs:
        grid[visitors.index(pair.visitor_country)][hosts.index(pair.host_country)] = pair.applied
    figure = _figure(max(2.5, 0.4 * len(visitors) + 1.5))
    axes = figure.add_subplot()
    axes.imshow(grid, cmap="Blues", aspect="auto")
    axes.set_xticks(range(len(hosts)), hosts)
    axes.set_yticks(range(len(visitors)), visitors)
    axes.set_xlabel("host country")
    axes.set_ylabel("visitor country")
    peak = max(max(row) for row in grid) or 1
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if value:
                axes.text(x, y, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    axes.set_title("Exchanges applied, visitor -> host")
    return _svg(figure)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a1a1a; max-width: 75rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #bfbfbf; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: bold; background: #f2f2f2; }
.note { color: #595959; font-size: 0.85rem; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
"""


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def _figures_table(report: KpiReport) -> str:
    heads = [
        "partnership",
        *FUNNEL,
        "held EUR",
        "paid in window EUR",
        "paid to date EUR",
        "SME share %",
        "days to payment, median",
        "p90",
        f"paid after {report.late_after_days} days",
        "overdue unpaid",
    ]
    lines = ["<table><thead><tr>", *(f"<th scope='col'>{html.escape(h)}</th>" for h in heads), "</tr></thead><tbody>"]
    for row in _rows(report):
        css = " class='total'" if row is report.total else ""
        cells = [
            row.partnership_id,
            *(getattr(row, name) for name in FUNNEL),
            eur_text(row.held_cents),
            eur_text(row.paid_cents),
            eur_text(row.paid_to_date_cents),
            _optional(row.sme_share_percent),
            _optional(row.days_to_payment_median),
            _optional(row.days_to_payment_p90),
            row.late_payments,
            row.overdue_unpaid,
        ]
        lines.append(f"<tr{css}>" + "".join(_cell(c) for c in cells) + "</tr>")
    lines.append("</tbody></table>")
    return "".join(lines)


def _pairs_table(report: KpiReport) -> str:
    lines = ["<table><thead><tr><th scope='col'>visitor country</th><th scope='col'>host country</th>"]
    lines.append("<th scope='col'>applied</th><th scope='col'>paid</th></tr></thead><tbody>")
    for p in report.country_pairs:
        lines.append(
            "<tr>" + "".join(_cell(c) for c in (p.visitor_country, p.host_country, p.applied, p.paid)) + "</tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def kpi_html(report: KpiReport) -> str:
    """The whole report as one HTML page that loads nothing from anywhere."""
    title = f"ClusterXchange KPIs, {report.date_from.isoformat()} to {report.date_to.isoformat()}"
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p class='note'>Dates inclusive, UTC. Generated {generated} from the read model and the ledger. "
            "Each count is an event inside the window (applied: submitted; eligible: entered review; funded: "
            "grant held; completed: stay ended; paid: finance confirmed); euros are the ledger's. "
            "Definitions: docs/adr/0028-kpi-report-and-exports.md.</p>",
            "<h2>Per partnership and in total</h2>",
            _figures_table(report),
            f"<figure>{funnel_chart(report)}</figure>",
            f"<figure>{money_chart(report)}</figure>",
            "<h2>Country pairs (visitor country to host country)</h2>",
            f"<figure>{pairs_chart(report)}</figure>",
            _pairs_table(report),
            "</body></html>",
            "",
        ]
    )
