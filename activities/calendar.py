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

    A month runs to the day before the same day number (2 Mar to 1 Apr). When the target month has no such
    day, the month runs to the end of the target month: 31 Jan to 28 Feb, and 31 Mar to 30 Apr. Clamping
    first (31 Jan + 1 month = 28 Feb) and then taking the day before would end those stays on 27 Feb and
    29 Apr, shorter than the calendar month that follows them.
    """
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    days_in_month = calendar.monthrange(year, month)[1]
    if start.day > days_in_month:
        return date(year, month, days_in_month)
    return date(year, month, start.day) - timedelta(days=1)
