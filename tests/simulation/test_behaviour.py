"""The behaviour model is data validated strictly, and the plans drawn from it depend on the seed alone."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.policy import load_policy, load_policy_text
from schemas.simulation import DEFAULT_BEHAVIOUR, BehaviourFileError, load_behaviour
from workers.cli import app
from workers.simulation.plan import calendar_shift, plan_programme
from workers.simulation.run import SimulationError, candidate_catalogue

SHIFT = timedelta(weeks=250)


def _file(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_BEHAVIOUR.read_text()
    assert old in text, f"the default behaviour file no longer holds {old!r}"
    path = tmp_path / "behaviour.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_default_model_is_the_programme() -> None:
    """The shipped model: 15 partnerships whose budgets sum to exactly 7,000,000.00 EUR, 1,500 applications."""
    behaviour = load_behaviour()
    assert len(behaviour.partnerships) == 15
    assert behaviour.budget_cents == 7_000_000_00
    assert behaviour.programme.applications == 1500
    assert behaviour.programme.start == date(2022, 2, 1)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("reject_share = 0.06", "reject_share = 0.06\nslow_share = 0.2", "reviewers.slow_share"),
        ("no_show_share = 0.02", "no_show_share = 1.5", "applicants.no_show_share"),
        ("no_show_share = 0.02", 'no_show_share = "0.02"', "applicants.no_show_share"),
        ("lead_days = { low = 21, high = 90 }", "lead_days = { low = 91, high = 90 }", "applicants.lead_days"),
        ("months = 24 ", "months = 23 ", "programme"),
    ],
)
def test_a_bad_model_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    """An unknown key, a share above 1, a quoted number, a reversed range, a weight per month missing: each refused,
    naming the key."""
    with pytest.raises(BehaviourFileError) as refused:
        load_behaviour(_file(tmp_path, old, new))
    assert any(problem_key.startswith(key) for problem_key, _ in refused.value.problems), refused.value.problems
    assert key in str(refused.value)


def test_plans_depend_on_the_seed_alone() -> None:
    """The same seed draws the same plans; another seed draws others; an application's plan does not depend on
    how many applications follow it."""
    policy = load_policy()
    small = load_behaviour(overrides={"programme": {"applications": 40}})
    large = load_behaviour(overrides={"programme": {"applications": 80}})
    first = plan_programme(small, 5, SHIFT, policy)
    assert first == plan_programme(small, 5, SHIFT, policy)
    assert first != plan_programme(small, 6, SHIFT, policy)
    assert first == plan_programme(large, 5, SHIFT, policy)[:40]
    assert all(p.application.policy_version == policy.version for p in first)


def test_the_calendar_shift_keeps_weekdays_and_stays_put_for_a_year() -> None:
    """52-week years: the programme lands after the server's today, on the same weekdays, and runs on other days
    of the same year get the same shift, so the same seed gives the same figures then too."""
    start = date(2022, 2, 1)
    shift = calendar_shift(start, date(2026, 12, 2))
    assert start + shift > date(2026, 12, 3)
    assert (start + shift).weekday() == start.weekday()
    assert shift.days % 364 == 0
    assert calendar_shift(start, date(2026, 3, 1)) == shift
    assert calendar_shift(start, date(2027, 6, 1)) == shift + timedelta(weeks=52)


def test_a_candidate_reusing_a_shipped_version_with_other_rules_is_refused(tmp_path: Path) -> None:
    """One version means one policy: a changed copy of 2022.1 must take a version of its own."""
    shipped = (Path(__file__).parents[2] / "schemas/policies/clusterxchange-2022.1.toml").read_text()
    changed = load_policy_text(shipped.replace("lump_sum_cap_cents = 110000", "lump_sum_cap_cents = 90000"), tmp_path)
    with pytest.raises(SimulationError, match="version"):
        candidate_catalogue(changed)
    assert candidate_catalogue(load_policy()) == {}
    renamed = load_policy_text(shipped.replace('version = "2022.1"', 'version = "2022.1-cap900"'), tmp_path / "x")
    assert set(candidate_catalogue(renamed)) == {"2022.1-cap900"}


def test_the_command_refuses_a_bad_model_before_starting_anything(tmp_path: Path) -> None:
    """`cx simulate programme --behaviour bad.toml` exits 2 (invalid input), naming the key; nothing is started."""
    bad = _file(tmp_path, "no_show_share = 0.02", "no_show_share = 1.5")
    result = CliRunner().invoke(app, ["simulate", "programme", "--behaviour", str(bad)])
    assert result.exit_code == 2, result.output
    assert "applicants.no_show_share" in result.output
