"""Retention periods as data (issue 16, item 2): schemas/retention.toml loads strictly and `cx privacy retention`
prints it."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from clients.exit_codes import ExitCode
from schemas.retention import (
    RETENTION_FILE,
    Category,
    RetentionFileError,
    load_retention_text,
    retention_schedule,
)
from tests.clients.test_cli import cx

SHIPPED = RETENTION_FILE.read_text(encoding="utf-8")


def test_the_shipped_schedule_has_a_rule_for_every_category() -> None:
    """The packaged file loads, names each category once, and keeps the financial record for 10 years."""
    schedule = retention_schedule()
    assert set(schedule.categories) == set(Category)
    for category in (Category.APPLICATIONS, Category.AUDIT_TRAIL):
        rule = schedule.categories[category]
        # Kept 10 years, yet a person in them is erasable: pseudonymised, their words shredded (ADR 0025).
        assert (rule.years, rule.counts_from.value, rule.erasable_today) == (10, "exchange_closed", True)
    assert schedule.categories[Category.WEB_SESSIONS].erasable_today
    assert not schedule.categories[Category.EVIDENCE_FILES].erasable_today  # the bytes: no delete path yet


def _with(old: str, new: str) -> str:
    assert old in SHIPPED, f"the shipped file no longer says {old!r}"
    return SHIPPED.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        (_with("years = 10", 'years = "10"'), "categories.applications.years", "valid integer"),
        (_with("erasable_today = true", "erasable_today = 1"), "categories.applications.erasable_today", "boolean"),
        (_with("[categories.logs]", "[categories.log]"), "categories.log.[key]", "Input should be"),
        (_with("days = 30\n", ""), "categories.logs", "at least one day"),
        (_with('counts_from = "created"', 'counts_from = "birthday"'), "counts_from", "Input should be"),
        (_with('lawful_basis = "legitimate interest: operating', 'basis = "x'), "lawful_basis", "Field required"),
        (_with('version = "2026.1"', 'version = "2026.1"\nowner = "dpo"'), "owner", "Extra inputs"),
        (_with("effective_from = 2026-12-01", 'effective_from = "2026-12-01"'), "effective_from", "valid date"),
        (SHIPPED + "\n[categories.applications", "(syntax)", "not valid TOML"),
    ],
)
def test_a_file_breaking_a_rule_is_refused_naming_the_field(text: str, field: str, rule: str) -> None:
    """No coercion (a period of "10", a flag of 1, a date as a string), no unknown or missing category or
    field, no empty period: each refused with the file, the field and the rule."""
    with pytest.raises(RetentionFileError) as refused:
        load_retention_text(text, Path("candidate.toml"))
    assert str(refused.value).startswith("candidate.toml:")
    assert any(field in where and re.search(rule, what) for where, what in refused.value.problems), refused.value


def test_a_missing_category_is_named() -> None:
    """Dropping a category's whole table is refused naming it: every category needs its rule."""
    start = SHIPPED.index("[categories.logs]")
    with pytest.raises(RetentionFileError, match="missing: logs"):
        load_retention_text(SHIPPED[:start], Path("candidate.toml"))


@pytest.mark.parametrize(
    ("category", "start", "expires"),
    [
        (Category.APPLICATIONS, date(2024, 2, 29), date(2034, 2, 28)),  # no 29 February in 2034
        (Category.REVIEWER_CONTACT_DATA, date(2026, 12, 31), date(2027, 12, 31)),
        (Category.OUTBOX_PAYLOADS, date(2026, 12, 1), date(2027, 3, 1)),  # 90 days
        (Category.WEB_SESSIONS, date(2026, 12, 31), date(2027, 1, 1)),
    ],
)
def test_a_period_ends_on_a_calendar_day(category: Category, start: date, expires: date) -> None:
    """Years and months are calendar ones (a leap day clamps to the month's end), then days are added."""
    assert retention_schedule().categories[category].expires_on(start) == expires


def test_the_command_prints_the_schedule() -> None:
    """`cx privacy retention` shows every category with its period; `--json` is the file's content as data."""
    shown = cx("privacy", "retention")
    assert shown.returncode == ExitCode.OK, shown.stderr
    assert "retention schedule 2026.1" in shown.stdout
    for category in Category:
        assert f"\n{category.value}: " in shown.stdout
    assert "applications: 10 years after exchange closed" in shown.stdout
    as_json = cx("privacy", "retention", "--json")
    assert as_json.returncode == ExitCode.OK, as_json.stderr
    assert json.loads(as_json.stdout) == retention_schedule().model_dump(mode="json")
