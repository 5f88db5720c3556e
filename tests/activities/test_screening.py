"""Screening rules R1-R6 as pure functions: every failing rule is reported, with its field."""

from __future__ import annotations

from datetime import date

from activities.screening import screen
from schemas.policy import load_policy
from tests.factories import application

POLICY = load_policy()


def _rules(app_overrides: dict[str, object]) -> set[tuple[str, str]]:
    result = screen(application(**app_overrides), POLICY)
    return {(f.rule, f.field) for f in result.failures}


def test_a_valid_application_passes_every_rule() -> None:
    """A transnational exchange of five working days between eligible organisations is eligible."""
    result = screen(application(), POLICY)
    assert result.eligible, result.failures
    assert result.working_days == 5
    assert result.policy_version == POLICY.version


def test_r4_refuses_a_country_outside_cosme() -> None:
    """R4: an organisation registered outside the participating countries fails on its country field."""
    app = application()
    host = app.host.model_copy(update={"country": "CH"})
    failures = screen(app.model_copy(update={"host": host}), POLICY).failures
    assert ("R4", "host.country") in {(f.rule, f.field) for f in failures}


def test_r5_refuses_two_organisations_in_the_same_country() -> None:
    """R5: visitor and host in the same country is not transnational."""
    app = application()
    host = app.host.model_copy(update={"country": "PL"})
    failures = screen(app.model_copy(update={"host": host}), POLICY).failures
    assert ("R5", "host.country") in {(f.rule, f.field) for f in failures}


def test_r6_counts_working_days_without_weekends_and_host_holidays() -> None:
    """R6: Thu 1 May 2025 (Labour Day in FR) to Mon 5 May has only 2 working days in France."""
    failures = _rules({"start_date": "2025-05-01", "end_date": "2025-05-05"})
    assert ("R6", "end_date") in failures


def test_r6_accepts_exactly_three_working_days() -> None:
    """R6: Wed 7 to Fri 9 January 2026 is exactly three working days in France: eligible."""
    result = screen(application(start_date="2026-01-07", end_date="2026-01-09"), POLICY)
    assert result.working_days == 3
    assert not [f for f in result.failures if f.rule == "R6"]


def test_r6_refuses_a_stay_longer_than_one_calendar_month() -> None:
    """R6: 2 March to 2 April is one month and a day, too long; 2 March to 1 April is fine."""
    assert ("R6", "end_date") in _rules({"start_date": "2026-03-02", "end_date": "2026-04-02"})
    assert ("R6", "end_date") not in _rules({"start_date": "2026-03-02", "end_date": "2026-04-01"})


def test_every_failing_rule_is_reported_not_just_the_first() -> None:
    """An application breaking R4, R5 and R6 at once gets all three reasons."""
    app = application(start_date="2026-01-07", end_date="2026-01-08")
    visitor = app.visitor.model_copy(update={"country": "CH"})
    host = app.host.model_copy(update={"country": "CH"})
    failures = screen(app.model_copy(update={"visitor": visitor, "host": host}), POLICY).failures
    assert {f.rule for f in failures} >= {"R4", "R5", "R6"}
    assert all(f.message for f in failures)


def test_lead_time_counts_from_the_original_submission_date() -> None:
    """An application submitted 5 days before its stay breaks the 10-day lead time (R13 policy)."""
    app = application(start_date="2026-01-12", end_date="2026-01-16")
    late = screen(app, POLICY, submitted_on=date(2026, 1, 7)).failures
    on_time = screen(app, POLICY, submitted_on=date(2025, 12, 1)).failures
    assert ("R13", "start_date") in {(f.rule, f.field) for f in late}
    assert not on_time
