"""The report's and the exports' inputs, parsed once for `cx` and the REST API: refusals name the field and the rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from ledger.exports import ExportKind
from ledger.kpis import ReportWindowError, report_window

KPI_FORMATS = ("table", "csv", "html", "json")
EXPORT_FORMATS = ("csv", "xlsx")


class InputRefused(ValueError):
    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def parse_date(field: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputRefused(field, f"must be a date YYYY-MM-DD, got {text!r}") from None


def check_window(start: date, end: date) -> tuple[date, date]:
    """`from` on or before `to` (both inclusive), the span within the report's limit."""
    if start > end:
        raise InputRefused("to", f"must be on or after from ({start.isoformat()}), got {end.isoformat()}")
    try:
        report_window(start, end)
    except ReportWindowError as error:
        raise InputRefused("to", error.rule) from None
    return start, end


def parse_window(date_from: str, date_to: str) -> tuple[date, date]:
    """`from` and `to` as dates YYYY-MM-DD, checked as check_window does."""
    return check_window(parse_date("from", date_from), parse_date("to", date_to))


def parse_as_of(text: str | None, now: datetime) -> datetime:
    """An instant with its offset (`2026-03-31T18:00:00+02:00`, `...Z`), or a date meaning the end of that day
    (UTC); none means now. Never in the future: rows are shown as they stood, not as they may become."""
    if text is None or text == "":
        return now
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            instant = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) - timedelta(microseconds=1)
        else:
            instant = datetime.fromisoformat(text)
    except ValueError:
        rule = f"must be a date YYYY-MM-DD or an ISO 8601 instant with its offset, got {text!r}"
        raise InputRefused("as_of", rule) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InputRefused("as_of", f"must carry its offset (e.g. {text}+00:00 or {text}Z): {text!r} has none")
    if instant > now:
        raise InputRefused("as_of", f"must not be in the future (now is {now.isoformat()})")
    return instant


def parse_kind(text: str) -> ExportKind:
    try:
        return ExportKind(text)
    except ValueError:
        known = ", ".join(k.value for k in ExportKind)
        raise InputRefused("kind", f"must be one of {known}, got {text!r}") from None


def parse_format(field: str, text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise InputRefused(field, f"must be one of {', '.join(allowed)}, got {text!r}")
    return text
