"""Working days and calendar months, as the programme counts them (DOMAIN.md, "Working days")."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import cache

import holidays


@cache
def _public_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


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


def add_working_days(start: date, days: int, country: str) -> date:
    """The date `days` working days after start (start itself not counted)."""
    day = start
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        remaining -= is_working_day(day, country)
    return day


def add_months(start: date, months: int) -> date:
    """Calendar months: the same day number, clamped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))
