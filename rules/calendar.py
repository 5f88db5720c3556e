"""Working days and calendar months, as the programme counts them (DOMAIN.md, "Working days")."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import cache

import holidays


@cache
def _public_holidays(country: str, year: int) -> frozenset[date]:
    try:
        return frozenset(holidays.country_holidays(country, years=year).keys())
    except NotImplementedError:
        # No calendar for this code (it is well formed but unknown): only weekends are non-working. Such a
        # country is never a participating one (the policy loader refuses codes without a calendar), so
        # screening refuses the application under R4; this keeps it from crashing before it can say so.
        return frozenset()


def is_working_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _public_holidays(country, day.year)


def working_days(start: date, end: date, country: str) -> int:
    """Working days from start to end inclusive: weekends and the country's public holidays excluded."""
    count = 0
    day = start
    while day <= end:
        count += is_working_day(day, country)
        day += timedelta(days=1)
    return count


def calendar_days(start: date, end: date) -> int:
    """Days from start to end inclusive (0 when end is before start)."""
    return max(0, (end - start).days + 1)


def add_working_days(start: date, days: int, country: str) -> date:
    """The date `days` working days after start (start itself not counted)."""
    day = start
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        remaining -= is_working_day(day, country)
    return day


def last_day_of_stay(start: date, months: int) -> date:
    """The last day a stay starting on `start` may include and still last at most `months` calendar months.

    DOMAIN.md: '"1 month" is calendar: start date plus one month', so the end date may be the start date plus
    `months` calendar months, that day included: 2 March to 2 April is allowed, 2 March to 3 April is not.
    When the target month has no such day number, the date is clamped to that month's last day (31 January
    plus one month is 28 February, or 29 in a leap year; 31 March is 30 April), as calendar arithmetic
    conventionally does; it never spills into the month after. See docs/adr/0010-rules-at-the-boundary.md,
    which replaces the earlier "to the day before" reading (ADR 0005).
    """
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))
