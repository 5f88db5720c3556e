"""The Commission's KPI report of a simulated programme (issue 17, item 3: "as well as from a simulation").

The simulation's scratch database holds the same read model and ledger as a real one, so the report is the
real one (ledger/kpis.py, clients/reports/kpi_pages.py) over the whole simulated window: from the first audit
event to the last (the time-skipping server's dates, shifted by whole years: ADR 0027), stretched to take in
today, because the ledger books at the real time: its euros would otherwise fall outside the window. The
days from application to payment mix the two clocks for that reason (payment orders are dated by the ledger).
`cx simulate programme --report DIR` writes `<label>-kpis.html` (charts inline) and `<label>-kpis.csv` per run,
before the database is dropped.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

from clients.reports.kpi_pages import kpi_csv, kpi_html
from ledger.kpis import KpiReport, programme_kpis
from workers.main import database_pool


async def simulated_kpis(dsn: str) -> KpiReport:
    """The KPI report over the simulated programme's whole window."""
    async with database_pool(dsn, max_size=2) as pool:
        window = await pool.fetchrow("SELECT min(at)::date AS first, max(at)::date AS last FROM audit_events")
        today = datetime.now(UTC).date()
        first: date = window["first"] if window and window["first"] else today
        last: date = window["last"] if window and window["last"] else today
        return await programme_kpis(pool, min(first, today), max(last, today))


async def write_kpi_report(dsn: str, directory: Path, label: str) -> list[Path]:
    """`<label>-kpis.html` and `<label>-kpis.csv` in `directory` (created); the paths written."""
    report = await simulated_kpis(dsn)
    pages = {directory / f"{label}-kpis.html": kpi_html(report), directory / f"{label}-kpis.csv": kpi_csv(report)}
    await asyncio.to_thread(_write, directory, pages)
    return list(pages)


def _write(directory: Path, pages: dict[Path, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
