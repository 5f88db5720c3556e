"""Retention periods as data (issue 16, item 2): how long each category of personal data is kept, and why.

The schedule is schemas/retention.toml, versioned like the policies (docs/adr/0005-policy-as-data.md) and
loaded strictly: every category of `Category` must be present and no other, no field may be missing,
unknown or coerced (a period of "10" is refused, not read as 10), and a period is at least one day. A file
that breaks a rule is refused with a `RetentionFileError` naming the file and each field with its rule.

docs/privacy.md describes each category; the erasure of the next step (docs/adr/0025-erasure-by-crypto-
shredding.md) reads its periods from here through `expires_on`.
"""

from __future__ import annotations

import calendar
import tomllib
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

RETENTION_FILE = Path(__file__).parent / "retention.toml"
# A limit on everything: no period outlives a human record (and month arithmetic stays far from date.max).
MAX_YEARS = 100


class Category(StrEnum):
    """The categories of personal data the engine holds (docs/privacy.md has one section per category)."""

    APPLICATIONS = "applications"
    AUDIT_TRAIL = "audit_trail"
    EVIDENCE_FILES = "evidence_files"
    REVIEWER_CONTACT_DATA = "reviewer_contact_data"
    WEB_SESSIONS = "web_sessions"
    IDEMPOTENCY_KEYS = "idempotency_keys"
    RATE_LIMIT_COUNTS = "rate_limit_counts"
    OUTBOX_PAYLOADS = "outbox_payloads"
    WORKFLOW_HISTORIES = "workflow_histories"
    LOGS = "logs"


class CountsFrom(StrEnum):
    """The event a period counts from."""

    EXCHANGE_CLOSED = "exchange_closed"  # PAID, or any other terminal stage (the exchange's last audit row)
    CALL_CLOSED = "call_closed"  # the call the person reviewed for closed (their last assignment closed)
    SESSION_EXPIRED = "session_expired"
    CREATED = "created"
    DELIVERED = "delivered"  # delivered, or parked as a dead letter
    WORKFLOW_CLOSED = "workflow_closed"


Text = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class RetentionRule(BaseModel):
    """One category: where it lives, from when and for how long it is kept, on which basis."""

    # Numbers and flags are strict (a period of "10" or an `erasable_today` of 1 is refused, never coerced);
    # category and event names are matched by value, an unknown one refused with the names allowed.
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Text
    holds: tuple[Text, ...] = Field(min_length=1)
    counts_from: CountsFrom
    years: int = Field(default=0, ge=0, le=MAX_YEARS, strict=True)
    months: int = Field(default=0, ge=0, le=11, strict=True)
    days: int = Field(default=0, ge=0, le=366, strict=True)
    lawful_basis: Text
    erasable_today: bool = Field(strict=True)

    @model_validator(mode="after")
    def _some_period(self) -> RetentionRule:
        if self.years == self.months == self.days == 0:
            raise ValueError("a period of at least one day: set years, months or days")
        return self

    def period(self) -> str:
        """The period in words: `10 years`, `1 day`, `1 year 6 months`."""
        parts = [(self.years, "year"), (self.months, "month"), (self.days, "day")]
        return " ".join(f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in parts if n)

    def expires_on(self, start: date) -> date:
        """The first day the data may no longer be kept, for data whose period counts from `start`.

        Months are calendar months, clamped to the month's last day (31 January + 1 month is 28/29 February).
        """
        month_index = start.month - 1 + self.months
        year = start.year + self.years + month_index // 12
        month = month_index % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return date.fromordinal(date(year, month, day).toordinal() + self.days)


class RetentionSchedule(BaseModel):
    """A version of the retention schedule: one rule per category, every category present."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, StringConstraints(pattern=r"^\d{4}\.\d+$")]
    effective_from: date = Field(strict=True)  # a TOML date, not a string
    categories: dict[Category, RetentionRule]

    @model_validator(mode="after")
    def _every_category(self) -> RetentionSchedule:
        missing = [c.value for c in Category if c not in self.categories]
        if missing:
            raise ValueError(f"every category needs its rule; missing: {', '.join(missing)}")
        return self


class RetentionFileError(ValueError):
    """A retention file that cannot be used: the file and every problem, each with its field and rule."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {field}: {rule}" for field, rule in problems)
        super().__init__(f"{path}: {len(problems)} problem(s)\n{lines}")


def load_retention_text(text: str, path: Path) -> RetentionSchedule:
    """The schedule in `text` (TOML; `path` names it in refusals), validated strictly."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RetentionFileError(path, [("(syntax)", f"not valid TOML: {error}")]) from error
    try:
        return RetentionSchedule.model_validate(data)
    except ValidationError as error:
        problems = [(".".join(str(part) for part in e["loc"]) or "(file)", e["msg"]) for e in error.errors()]
        raise RetentionFileError(path, problems) from None


def load_retention_file(path: Path) -> RetentionSchedule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RetentionFileError(path, [("(file)", f"cannot be read: {error}")]) from error
    return load_retention_text(text, path)


@cache
def retention_schedule() -> RetentionSchedule:
    """The schedule shipped with the engine (schemas/retention.toml), validated once per process."""
    return load_retention_file(RETENTION_FILE)
