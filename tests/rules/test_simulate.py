"""Dry runs: a candidate policy evaluated over open exchanges shows what would change, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rules.simulate import SimulationCase, simulate
from schemas.exchange import ApplicationInput
from schemas.policy import Policy, load_policy
from tests.factories import application

CURRENT = load_policy("2022.1")
ZAGREB = {"country": "HR", "latitude": 45.8150, "longitude": 15.9819}


def _candidate(**eligibility: Any) -> Policy:
    """2022.1 with a stricter minimum stay and a lower default threshold, validated as a file would be."""
    data = CURRENT.model_dump(mode="json")
    data["version"] = "2026.1-draft"
    data["eligibility"] |= {"min_working_days": 4, **eligibility}
    data["pricing"]["default_host_threshold_cents"] = 70000
    return Policy.model_validate(data)


def _app(
    app_id: str, partnership_id: str, start: str, end: str, host: dict[str, Any] | None = None
) -> ApplicationInput:
    data = application(application_id=app_id, visitor_partnership_id=partnership_id, start_date=start, end_date=end)
    dumped = data.model_dump()
    dumped["host"] |= host or {}
    return ApplicationInput.model_validate(dumped)


def _case(
    app: ApplicationInput, amount_cents: int | None, held_cents: int, outcome: str = "eligible"
) -> SimulationCase:
    return SimulationCase.model_validate(
        {
            "application": app,
            "current_policy": CURRENT,
            "current_outcome": outcome,
            "current_amount_cents": amount_cents,
            "held_cents": held_cents,
        }
    )


CASES = [
    # Zagreb week: 780 EUR now, 700 EUR under the candidate's lower default threshold.
    _case(_app("app-a1", "p-a", "2026-01-12", "2026-01-16", ZAGREB), 78000, 78000),
    # Lyon, 3 working days: 475 EUR (halved 950) now, ineligible under a 4-working-day minimum.
    _case(_app("app-a2", "p-a", "2026-01-07", "2026-01-09"), 47500, 47500),
    # Lyon week: 950 EUR either way.
    _case(_app("app-b1", "p-b", "2026-01-12", "2026-01-16"), 95000, 95000),
    # Zagreb week still in review: nothing priced or held yet, priced now at 780 EUR for the comparison.
    _case(_app("app-b2", "p-b", "2026-01-12", "2026-01-16", ZAGREB), None, 0),
]


def test_simulate_reports_each_exchange_change() -> None:
    """One exchange becomes ineligible, two change amount (one priced only now), one stays as it is."""
    report = simulate(CASES, _candidate())
    by_id = {e.application_id: e for e in report.exchanges}
    a1, a2, b1, b2 = by_id["app-a1"], by_id["app-a2"], by_id["app-b1"], by_id["app-b2"]
    assert (a1.outcome_candidate, a1.amount_now_cents, a1.amount_candidate_cents, a1.held_candidate_cents) == (
        "eligible",
        78000,
        70000,
        70000,
    )
    assert (a2.outcome_changed, a2.outcome_candidate, a2.amount_candidate_cents, a2.held_candidate_cents) == (
        True,
        "ineligible",
        None,
        0,
    )
    assert [(f.rule, f.field) for f in a2.failures_candidate] == [("R6", "end_date")]
    assert a2.rules_changed
    assert not b1.changed
    assert (b2.amount_now_cents, b2.amount_now_recorded, b2.amount_candidate_cents, b2.held_candidate_cents) == (
        78000,
        False,
        70000,
        0,
    )
    assert [e.application_id for e in report.changed_exchanges()] == ["app-a1", "app-a2", "app-b2"]


def test_simulate_totals_what_each_partnership_would_hold() -> None:
    """Partnership totals: holds re-priced where the exchange stays eligible, released where it would not."""
    totals = {p.partnership_id: p for p in simulate(CASES, _candidate()).partnerships}
    assert (totals["p-a"].held_now_cents, totals["p-a"].held_candidate_cents, totals["p-a"].held_delta_cents) == (
        125500,
        70000,
        -55500,
    )
    assert (totals["p-a"].becoming_ineligible, totals["p-a"].amount_changes) == (1, 1)
    assert (totals["p-b"].held_now_cents, totals["p-b"].held_candidate_cents) == (95000, 95000)
    assert (totals["p-b"].exchanges, totals["p-b"].amount_changes) == (2, 1)


def test_an_exchange_can_become_eligible() -> None:
    """Relaxing the rule that refused an exchange shows it becoming eligible, with the amount it would get."""
    strict = _candidate()
    refused = SimulationCase(
        application=CASES[1].application, current_policy=strict, current_outcome="ineligible", held_cents=0
    )
    (change,) = simulate([refused], CURRENT).exchanges
    assert (change.outcome_now, change.outcome_candidate, change.amount_now_cents) == ("ineligible", "eligible", None)
    assert (change.amount_candidate_cents, change.held_candidate_cents) == (47500, 0)
    assert [(f.rule, f.field) for f in change.failures_now] == [("R6", "end_date")]
    assert change.rules_changed


def test_the_current_policy_as_candidate_changes_nothing() -> None:
    """Simulating the policy already in force reports no change and equal totals."""
    report = simulate(CASES, CURRENT)
    assert report.changed_exchanges() == ()
    assert all(p.held_now_cents == p.held_candidate_cents for p in report.partnerships)


def test_render_text_for_the_cli() -> None:
    """The text report names the changed exchanges, the new failing rule and the partnership totals in EUR."""
    text = simulate(CASES, _candidate()).render_text()
    assert text.startswith("Dry run of policy 2026.1-draft over 4 open exchange(s): 3 would change.")
    assert "app-a2 (p-a): eligible -> INELIGIBLE; amount 475.00 EUR -> none; held 475.00 EUR -> 0.00 EUR" in text
    assert "+ R6 end_date: The stay has 3 working day(s) in FR; at least 4 are required" in text
    assert "app-b2 (p-b): eligible; amount 780.00 EUR (priced now) -> 700.00 EUR; held 0.00 EUR -> 0.00 EUR" in text
    assert "(1 exchange(s) unchanged)" in text
    assert "p-a: 2 exchange(s), 1 becoming ineligible, 0 becoming eligible, 1 amount change(s); " in text
    assert "held 1,255.00 EUR -> 700.00 EUR (-555.00 EUR)" in text
    assert "app-b1" in simulate(CASES, _candidate()).render_text(show_unchanged=True)


def test_a_case_is_validated_when_filled() -> None:
    """A case from the database with an unknown outcome or a negative hold is refused when built."""
    with pytest.raises(ValidationError):
        SimulationCase(application=CASES[0].application, current_policy=CURRENT, current_outcome="maybe")
    with pytest.raises(ValidationError):
        SimulationCase(
            application=CASES[0].application, current_policy=CURRENT, current_outcome="eligible", held_cents=-1
        )


def test_the_report_serialises_to_json() -> None:
    """The report is plain data: a CLI can print it as JSON and read it back."""
    report = simulate(CASES, _candidate())
    assert type(report).model_validate_json(report.model_dump_json()) == report
