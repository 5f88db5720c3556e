"""The KPI report (issue 17, item 3): figures equal to hand-computed ones for a small programme driven through the
real engine (tests/reports/conftest.py), windows that filter by when each event happened, and the renderers."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from html.parser import HTMLParser

import pytest

from clients.reports.kpi_pages import csv_header, kpi_csv, kpi_html, kpi_table
from ledger.kpis import TOTAL, CountryPair, KpiReport, ReportWindowError, nearest_rank, programme_kpis
from ledger.store import LedgerStore
from tests.reports.conftest import ALLOCATED_CENTS, GRANT_CENTS, Programme

pytestmark = pytest.mark.timeout(300)  # the first test pays for the programme's drive (four exchanges)


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86400


def _whole(programme: Programme) -> tuple[date, date]:
    """A window holding every event the fixture caused (the test server's clock ran 57 days ahead)."""
    return programme.started[0].date() - timedelta(days=1), programme.ended.date() + timedelta(days=1)


async def test_the_figures_of_the_whole_programme_are_the_hand_computed_ones(programme: Programme) -> None:
    """Four exchanges: 4 applied, 3 eligible (C fails R5), 3 funded, 2 completed and paid (A on time, B 12 days
    after its order: late), D's 95,000 cents held, 190,000 paid, 1 SME of 4 applied; days to payment from the
    test's own clock readings; the country pairs visitor -> host."""
    report = await programme_kpis(programme.pool, *_whole(programme))
    (mine,) = report.partnerships
    assert mine.partnership_id == programme.partnership
    funnel = (mine.applied, mine.eligible, mine.funded, mine.completed, mine.paid)
    assert funnel == (4, 3, 3, 2, 2)
    money = (mine.allocated_cents, mine.held_cents, mine.paid_cents, mine.paid_to_date_cents)
    assert money == (ALLOCATED_CENTS, GRANT_CENTS, 2 * GRANT_CENTS, 2 * GRANT_CENTS)
    assert (mine.sme_applied, mine.sme_share_percent) == (1, 25.0)
    assert (mine.late_payments, mine.overdue_unpaid) == (1, 0)
    # Each exchange applied between the two clock readings around its start and was paid between the two around
    # its confirmation: its days lie in [earliest, latest]. The median of two is their mean; p90 is B's.
    a = (_days(programme.a_confirmed[0], programme.started[1]), _days(programme.a_confirmed[1], programme.started[0]))
    b = (_days(programme.b_confirmed[0], programme.started[1]), _days(programme.b_confirmed[1], programme.started[0]))
    assert 56 < b[0] <= b[1] < 58, "B waited 45 + 12 days on the test server's clock"
    assert mine.days_to_payment_median is not None
    assert mine.days_to_payment_p90 is not None
    assert (a[0] + b[0]) / 2 - 0.05 <= mine.days_to_payment_median <= (a[1] + b[1]) / 2 + 0.05
    assert b[0] - 0.05 <= mine.days_to_payment_p90 <= b[1] + 0.05
    assert report.total.model_dump(exclude={"partnership_id"}) == mine.model_dump(exclude={"partnership_id"})
    assert report.total.partnership_id == TOTAL
    assert report.country_pairs == [
        CountryPair(visitor_country="CZ", host_country="FR", applied=1, paid=1),
        CountryPair(visitor_country="PL", host_country="FR", applied=2, paid=1),
        CountryPair(visitor_country="PL", host_country="PL", applied=1, paid=0),
    ]


async def test_the_euros_are_the_ledgers_own_balances(programme: Programme) -> None:
    """Held and paid to date are what `cx budget` prints for the partnership (LedgerStore.partnership_balances)."""
    report = await programme_kpis(programme.pool, *_whole(programme))
    (balance,) = [b for b in await LedgerStore(programme.pool).partnership_balances()]
    (mine,) = report.partnerships
    assert (mine.allocated_cents, mine.held_cents, mine.paid_to_date_cents) == (
        balance.allocated_cents,
        balance.held_cents,
        balance.paid_cents,
    )


async def test_a_window_counts_only_what_happened_inside_it(programme: Programme) -> None:
    """The first day: A, B and C applied, A and B eligible and funded, nothing completed or paid. Days 36 to 55:
    nothing applied, A and B completed (the test server's 45-day sleep fires their stays' end timers at its end,
    so they enter REPORTING on day 45), A paid on time, B's order unconfirmed 10+ days by the window's end."""
    first = programme.started[0].date()
    day_one = (await programme_kpis(programme.pool, first, first)).total
    assert (day_one.applied, day_one.eligible, day_one.funded, day_one.completed, day_one.paid) == (3, 2, 2, 0, 0)
    assert (day_one.days_to_payment_median, day_one.late_payments, day_one.overdue_unpaid) == (None, 0, 0)
    assert (day_one.sme_applied, day_one.sme_share_percent) == (1, 33.3)
    later = (await programme_kpis(programme.pool, first + timedelta(days=36), first + timedelta(days=55))).total
    assert (later.applied, later.eligible, later.funded, later.completed, later.paid) == (0, 0, 0, 2, 1)
    assert (later.late_payments, later.overdue_unpaid, later.sme_share_percent) == (0, 1, None)
    before = await programme_kpis(programme.pool, first - timedelta(days=30), first - timedelta(days=1))
    assert before.partnerships == [], "nothing was allocated nor applied before the test"
    assert (before.total.applied, before.total.allocated_cents, before.country_pairs) == (0, 0, [])


async def test_a_window_that_ends_before_it_starts_is_refused_naming_the_field(programme: Programme) -> None:
    """from > to is refused naming date_to and the rule, before anything is read."""
    with pytest.raises(ReportWindowError) as refused:
        await programme_kpis(programme.pool, date(2026, 3, 2), date(2026, 3, 1))
    assert refused.value.field == "date_to"
    assert "on or after date_from (2026-03-02)" in refused.value.rule


def test_the_nearest_rank_percentile() -> None:
    """p90 of 1..10 is 9, of 1..11 is 10, of one value that value (nearest rank, no interpolation)."""
    assert nearest_rank([float(v) for v in range(1, 11)], 90) == 9
    assert nearest_rank([float(v) for v in range(1, 12)], 90) == 10
    assert nearest_rank([4.5], 90) == 4.5


# --- renderers ------------------------------------------------------------------------------------------------


class _References(HTMLParser):
    """Every src/href-like attribute that loads something (not `#id` nor a `data:` URI), and every attribute naming
    another host (xmlns aside: names, not loads)."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.svgs += tag == "svg"
        for name, value in attrs:
            if name.startswith("xmlns") or value is None:
                continue
            loads = name in {"src", "href", "xlink:href", "srcset", "action", "data", "poster"}
            elsewhere = re.search(r"url\(\s*['\"]?[^#'\"\s]", value) is not None  # url(#id) is this page's own
            inline = value.startswith(("#", "data:"))  # this page's own element, or bytes carried in the page
            if (loads and not inline) or "http://" in value or "https://" in value or elsewhere:
                self.external.append(f"<{tag} {name}={value!r}>")
        if tag in {"script", "link", "iframe", "object", "embed", "img"}:
            self.external.append(f"<{tag}>")


def external_references(page: str) -> tuple[list[str], int]:
    parser = _References()
    parser.feed(page)
    parser.close()
    return parser.external, parser.svgs


def test_the_reference_check_can_fail() -> None:
    """The check below is not vacuous: an image from another host, a stylesheet link and a script are found."""
    page = (
        "<html><body><img src='https://cdn.example/x.png'><link href='a.css'><svg></svg>"
        "<div style=\"background: url('x.png')\"></div><path clip-path='url(#own)'></path></body></html>"
    )
    found, svgs = external_references(page)
    assert len(found) == 5, found
    assert svgs == 1
    assert not any("#own" in f for f in found), "a reference inside the page is no load"


async def test_the_html_page_loads_nothing_from_anywhere_and_draws_three_charts(programme: Programme) -> None:
    """The page parses, refers to no host and no file (charts inline SVG, style inline) and shows every figure."""
    report = await programme_kpis(programme.pool, *_whole(programme))
    page = kpi_html(report)
    found, svgs = external_references(page)
    assert found == []
    assert svgs >= 3, "the funnel, the budgets and the country pairs"
    assert "<style>" in page
    assert programme.partnership in page
    assert "1900.00" in page  # paid in EUR
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


async def test_the_csv_and_the_table_carry_the_same_figures(programme: Programme) -> None:
    """CSV: a header, one row per partnership then TOTAL, cents with their EUR beside; the table names them all."""
    report: KpiReport = await programme_kpis(programme.pool, *_whole(programme))
    rows = list(csv.DictReader(io.StringIO(kpi_csv(report))))
    assert list(rows[0]) == csv_header()
    assert [r["partnership_id"] for r in rows] == [programme.partnership, TOTAL]
    total = rows[-1]
    assert (int(total["applied"]), int(total["paid"]), int(total["held_cents"])) == (4, 2, GRANT_CENTS)
    assert (total["paid_cents"], total["paid_eur"], total["late_payments"]) == ("190000", "1900.00", "1")
    text = kpi_table(report)
    for shown in (programme.partnership, "TOTAL", "CZ", "1900.00"):
        assert shown in text
