"""The programme's KPIs for the Commission (issue 17, item 3; docs/adr/0028-kpi-report-and-exports.md).

`programme_kpis(pool, date_from, date_to)` reads the read model (`exchanges`, `audit_events`,
`payment_orders`) and the ledger in one read-only snapshot and counts, per visitor's partnership (R9) and in
total, what happened in the window `[date_from 00:00 UTC, date_to + 1 day 00:00 UTC)`. Each figure is an
event in the window, so two adjacent windows add up to the window that covers both:

- **applied**: the application's `submitted_at` (an import's original date), else its first audit event;
- **eligible**: the exchange first entered REVIEW (screening passed R1-R7);
- **funded**: the first `funds_held` event (its grant held in the ledger, from FUNDING or the waitlist);
- **completed**: the exchange first entered REPORTING (the stay ended, the traveller reports);
- **paid**: finance confirmed the payment order (`payment_orders.confirmed_at`, the exchange is PAID);
- **late payments**: paid in the window more than `LATE_AFTER_DAYS` (R11: 10 days) after the order was
  written (`payment_ordered`, the instant the VOP's validation of the report completes the exchange and the
  engine's SLA timer starts), and **overdue unpaid**: orders still unconfirmed at the window's end whose 10
  days had passed by then;
- **days to payment**: from applied to paid, for the exchanges paid in the window (median and p90,
  nearest rank), in days to one decimal;
- **SME share**: of the exchanges applied in the window, those with an SME (organisation type `sme`) as
  visitor or host;
- **country pairs**: visitor country -> host country of the exchanges applied in the window, and of those
  paid in it;
- **euros**: the ledger's own budget balances (LedgerStore.partnership_balances) as of the window's end
  (allocated, held: open holds) and the money posted in the window (posted at the end minus posted at the
  start).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
from pydantic import BaseModel, Field

from ledger.store import DbConnection, LedgerStore
from schemas.ledger import PartnershipBalance

LATE_AFTER_DAYS = 10  # R11: one instalment within 10 days of completion
TOTAL = "TOTAL"
MAX_WINDOW_DAYS = 3660  # ten years: the programme ran two
MAX_EXCHANGES = 1_000_000  # a limit on the read: far above any programme's exchanges

# One row per exchange that has a milestone in the window (or an order still open at its end): its
# partnership, countries, organisation types and the instant of each milestone.
_MILESTONES_SQL = """
WITH marks AS (
    SELECT application_id,
           min(at) AS first_at,
           min(at) FILTER (WHERE event = 'stage_entered' AND stage = 'REVIEW') AS eligible_at,
           min(at) FILTER (WHERE event = 'funds_held') AS funded_at,
           min(at) FILTER (WHERE event = 'stage_entered' AND stage = 'REPORTING') AS completed_at,
           min(at) FILTER (WHERE event = 'payment_ordered') AS ordered_at
      FROM audit_events
     WHERE at < $2
     GROUP BY application_id
), rows AS (
    SELECT e.application_id, e.partnership_id,
           coalesce(e.application -> 'visitor' ->> 'country', '') AS visitor_country,
           e.host_country,
           coalesce(e.application -> 'visitor' ->> 'type', '') AS visitor_type,
           coalesce(e.application -> 'host' ->> 'type', '') AS host_type,
           coalesce((e.application ->> 'submitted_at')::timestamptz, m.first_at) AS applied_at,
           m.eligible_at, m.funded_at, m.completed_at, m.ordered_at,
           p.confirmed_at AS paid_at
      FROM exchanges e
      JOIN marks m USING (application_id)
      LEFT JOIN payment_orders p USING (application_id)
)
SELECT * FROM rows
 WHERE applied_at >= $1 AND applied_at < $2
    OR eligible_at >= $1 OR funded_at >= $1 OR completed_at >= $1
    OR (paid_at >= $1 AND paid_at < $2)
    OR (ordered_at IS NOT NULL AND (paid_at IS NULL OR paid_at >= $2))
 ORDER BY application_id
 LIMIT $3"""


class ReportWindowError(ValueError):
    """A window that cannot be reported on, naming the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class PartnershipKpis(BaseModel):
    """One partnership's figures for the window (or the programme's, `partnership_id` TOTAL)."""

    partnership_id: str
    applied: int = Field(ge=0)
    eligible: int = Field(ge=0)
    funded: int = Field(ge=0)
    completed: int = Field(ge=0)
    paid: int = Field(ge=0)
    allocated_cents: int = Field(ge=0, description="budget allocated, as of the window's end (ledger)")
    held_cents: int = Field(ge=0, description="open holds, as of the window's end (ledger)")
    paid_cents: int = Field(ge=0, description="posted to exchanges in the window (ledger)")
    paid_to_date_cents: int = Field(ge=0, description="posted to exchanges up to the window's end (ledger)")
    sme_applied: int = Field(ge=0, description="applied in the window with an SME as visitor or host")
    sme_share_percent: float | None = Field(description="sme_applied / applied, one decimal; none when 0 applied")
    days_to_payment_median: float | None
    days_to_payment_p90: float | None
    late_payments: int = Field(ge=0, description=f"paid in the window more than {LATE_AFTER_DAYS} days after the order")
    overdue_unpaid: int = Field(
        ge=0, description=f"unconfirmed at the window's end, ordered {LATE_AFTER_DAYS}+ days before"
    )


class CountryPair(BaseModel):
    visitor_country: str
    host_country: str
    applied: int = Field(ge=0)
    paid: int = Field(ge=0)


class KpiReport(BaseModel):
    """The Commission's KPI report for one window: per partnership, the total, and the country pairs."""

    date_from: date
    date_to: date
    generated_at: datetime
    late_after_days: int = LATE_AFTER_DAYS
    partnerships: list[PartnershipKpis]
    total: PartnershipKpis
    country_pairs: list[CountryPair]


@dataclass(frozen=True)
class ExchangeMilestones:
    """One exchange's milestones, as read."""

    application_id: str
    partnership_id: str
    visitor_country: str
    host_country: str
    sme: bool
    applied_at: datetime | None
    eligible_at: datetime | None
    funded_at: datetime | None
    completed_at: datetime | None
    ordered_at: datetime | None
    paid_at: datetime | None


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime  # exclusive

    def has(self, instant: datetime | None) -> bool:
        return instant is not None and self.start <= instant < self.end


def report_window(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The window's instants `[date_from 00:00 UTC, date_to + 1 day 00:00 UTC)`, or ReportWindowError."""
    if date_from > date_to:
        raise ReportWindowError("date_to", f"must be on or after date_from ({date_from.isoformat()})")
    if (date_to - date_from).days >= MAX_WINDOW_DAYS:
        raise ReportWindowError("date_to", f"the window may span at most {MAX_WINDOW_DAYS} days")
    start = datetime.combine(date_from, time(0), tzinfo=UTC)
    return start, datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=UTC)


async def programme_kpis(pool: asyncpg.Pool, date_from: date, date_to: date) -> KpiReport:
    """The KPI report for the window, from the read model and the ledger in one read-only snapshot."""
    start, end = report_window(date_from, date_to)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        exchanges = await _exchanges(conn, start, end)
        store = LedgerStore(pool)
        at_end = await store.partnership_balances(as_of=end - timedelta(microseconds=1), conn=conn)
        at_start = await store.partnership_balances(as_of=start - timedelta(microseconds=1), conn=conn)
        generated_at = await conn.fetchval("SELECT now()")
    return build_report(date_from, date_to, generated_at, exchanges, at_start, at_end)


async def _exchanges(conn: DbConnection, start: datetime, end: datetime) -> list[ExchangeMilestones]:
    rows = await conn.fetch(_MILESTONES_SQL, start, end, MAX_EXCHANGES + 1)
    if len(rows) > MAX_EXCHANGES:
        raise ReportWindowError("date_from", f"the window holds more than {MAX_EXCHANGES} exchanges: narrow it")
    return [
        ExchangeMilestones(
            application_id=row["application_id"],
            partnership_id=row["partnership_id"],
            visitor_country=row["visitor_country"],
            host_country=row["host_country"],
            sme="sme" in (row["visitor_type"], row["host_type"]),
            applied_at=row["applied_at"],
            eligible_at=row["eligible_at"],
            funded_at=row["funded_at"],
            completed_at=row["completed_at"],
            ordered_at=row["ordered_at"],
            paid_at=row["paid_at"],
        )
        for row in rows
    ]


def build_report(
    date_from: date,
    date_to: date,
    generated_at: datetime,
    exchanges: list[ExchangeMilestones],
    at_start: list[PartnershipBalance],
    at_end: list[PartnershipBalance],
) -> KpiReport:
    window = _Window(*report_window(date_from, date_to))
    before = {b.partnership_id: b for b in at_start}
    after = {b.partnership_id: b for b in at_end}
    ids = sorted({e.partnership_id for e in exchanges} | set(after))
    partnerships = [
        _figures(pid, [e for e in exchanges if e.partnership_id == pid], window, before.get(pid), after.get(pid))
        for pid in ids
    ]
    total = _figures(TOTAL, exchanges, window, None, None)
    total = total.model_copy(
        update={
            "allocated_cents": sum(p.allocated_cents for p in partnerships),
            "held_cents": sum(p.held_cents for p in partnerships),
            "paid_cents": sum(p.paid_cents for p in partnerships),
            "paid_to_date_cents": sum(p.paid_to_date_cents for p in partnerships),
        }
    )
    return KpiReport(
        date_from=date_from,
        date_to=date_to,
        generated_at=generated_at,
        partnerships=partnerships,
        total=total,
        country_pairs=_pairs(exchanges, window),
    )


def _figures(
    partnership_id: str,
    exchanges: list[ExchangeMilestones],
    window: _Window,
    before: PartnershipBalance | None,
    after: PartnershipBalance | None,
) -> PartnershipKpis:
    applied = [e for e in exchanges if window.has(e.applied_at)]
    paid = [e for e in exchanges if window.has(e.paid_at)]
    late = timedelta(days=LATE_AFTER_DAYS)
    days = sorted(
        (e.paid_at - e.applied_at).total_seconds() / 86400
        for e in paid
        if e.paid_at is not None and e.applied_at is not None
    )
    posted_before = before.paid_cents if before else 0
    posted_after = after.paid_cents if after else 0
    return PartnershipKpis(
        partnership_id=partnership_id,
        applied=len(applied),
        eligible=sum(window.has(e.eligible_at) for e in exchanges),
        funded=sum(window.has(e.funded_at) for e in exchanges),
        completed=sum(window.has(e.completed_at) for e in exchanges),
        paid=len(paid),
        allocated_cents=after.allocated_cents if after else 0,
        held_cents=after.held_cents if after else 0,
        paid_cents=posted_after - posted_before,
        paid_to_date_cents=posted_after,
        sme_applied=sum(e.sme for e in applied),
        sme_share_percent=round(100 * sum(e.sme for e in applied) / len(applied), 1) if applied else None,
        days_to_payment_median=round(statistics.median(days), 1) if days else None,
        days_to_payment_p90=round(nearest_rank(days, 90), 1) if days else None,
        late_payments=sum(
            1 for e in paid if e.ordered_at is not None and e.paid_at is not None and e.paid_at - e.ordered_at > late
        ),
        overdue_unpaid=sum(
            1
            for e in exchanges
            if e.ordered_at is not None
            and e.ordered_at + late < window.end
            and (e.paid_at is None or e.paid_at >= window.end)
        ),
    )


def nearest_rank(sorted_values: list[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent`% of the values at or below it."""
    assert sorted_values, "a percentile of no values"
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _pairs(exchanges: list[ExchangeMilestones], window: _Window) -> list[CountryPair]:
    applied = Counter((e.visitor_country, e.host_country) for e in exchanges if window.has(e.applied_at))
    paid = Counter((e.visitor_country, e.host_country) for e in exchanges if window.has(e.paid_at))
    return [
        CountryPair(visitor_country=v, host_country=h, applied=applied[(v, h)], paid=paid[(v, h)])
        for v, h in sorted(set(applied) | set(paid))
    ]
