"""Policy files: shipped versions load and survive Temporal's JSON; bad files are refused with the field named."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schemas.converter import DATA_CONVERTER
from schemas.organisations import OrganisationType
from schemas.policy import (
    POLICIES_DIR,
    LumpSumPricing,
    Policy,
    PolicyFileError,
    UnitCostPricing,
    UnknownPolicyVersion,
    load_policy,
    load_policy_file,
    policy_in_force,
)

CLUSTERXCHANGE_FILE = POLICIES_DIR / "clusterxchange-2022.1.toml"
ERASMUS_FILE = POLICIES_DIR / "erasmus-staff-2021.toml"


@pytest.mark.parametrize("path", sorted(POLICIES_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_policy_loads_and_round_trips_through_temporal(path: Path) -> None:
    """Each shipped file validates and comes back equal through the data converter the workers use."""
    policy = load_policy_file(path)
    payload = DATA_CONVERTER.payload_converter.to_payload(policy)
    assert DATA_CONVERTER.payload_converter.from_payload(payload, Policy) == policy


def test_the_shipped_files_hold_the_programme_numbers() -> None:
    """2022.1 holds DOMAIN.md's figures as data; the Erasmus+ file is a unit-cost policy of the same engine."""
    pilot, erasmus = load_policy("2022.1"), load_policy_file(ERASMUS_FILE)
    assert isinstance(pilot.pricing, LumpSumPricing)
    assert isinstance(erasmus.pricing, UnitCostPricing)
    assert (pilot.pricing.lump_sum_cap_cents, pilot.pricing.default_host_threshold_cents) == (110000, 78000)
    assert (pilot.pricing.halving_below_working_days, pilot.pricing.halving_below_distance_km) == (5, 200.0)
    assert (pilot.eligibility.min_working_days, pilot.eligibility.max_stay_months) == (3, 1)
    assert pilot.eligibility.application_lead_days == 10
    assert pilot.eligibility.cancelled_uses_visit is False
    assert len(pilot.eligibility.participating_countries) == 27 + 11
    assert erasmus.version == "erasmus-2021.1"


def test_a_policy_recorded_before_pricing_kinds_still_deserialises() -> None:
    """A Policy as histories recorded it before this change (no `kind`, no R3/R7 fields) reads as the same policy.

    tests/workflows/test_replay.py replays the real recorded histories; this pins the shape without them.
    """
    current = load_policy("2022.1")
    recorded: dict[str, Any] = current.model_dump(mode="json")
    del recorded["pricing"]["kind"]
    for name in LEGACY_ELIGIBILITY_FIELDS:
        del recorded["eligibility"][name]
    assert Policy.model_validate_json(json.dumps(recorded)) == current


LEGACY_ELIGIBILITY_FIELDS = (
    "profiled_member_visitor_types",
    "profiled_member_or_approved_host_types",
    "cancelled_uses_visit",
    "country_list_name",
)


def test_a_policy_recorded_before_cluster_membership_asks_none() -> None:
    """A 2022.1 recorded without `cluster_member_visitor_types` still deserialises, with the rule it was applied
    with: no cluster membership asked (issue 10); the shipped file now states R1's rule for scale-up support."""
    current = load_policy("2022.1")
    assert current.eligibility.cluster_member_visitor_types == {OrganisationType.SCALE_UP_SUPPORT}
    recorded: dict[str, Any] = current.model_dump(mode="json")
    del recorded["eligibility"]["cluster_member_visitor_types"]
    replayed = Policy.model_validate_json(json.dumps(recorded))
    assert replayed.eligibility.cluster_member_visitor_types == frozenset()
    assert replayed == current.model_copy(
        update={"eligibility": current.eligibility.model_copy(update={"cluster_member_visitor_types": frozenset()})}
    )


# Where the version line sits in the shipped file (its header comments grow with each stated field).
_VERSION_LINE = CLUSTERXCHANGE_FILE.read_text().splitlines().index('version = "2022.1"') + 1


def _write(tmp_path: Path, source: Path, old: str, new: str, name: str | None = None) -> Path:
    text = source.read_text()
    assert old in text, f"the fixture edit {old!r} no longer applies to {source.name}"
    path = tmp_path / (name or source.name)
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "field", "rule"),
    [
        ('version = "2022.1"', 'version = "2022.1', "(syntax)", f"at line {_VERSION_LINE}"),
        ("lump_sum_cap_cents = 110000", "lump_sum_cap = 110000", "pricing.lump_sum_cap", "unknown field"),
        ("lump_sum_cap_cents = 110000", 'lump_sum_cap_cents = "110000"', "pricing.lump_sum_cap_cents", "valid integer"),
        ("lump_sum_cap_cents = 110000", "lump_sum_cap_cents = 1100.0", "pricing.lump_sum_cap_cents", "valid integer"),
        ("lump_sum_cap_cents = 110000", "lump_sum_cap_cents = -1", "pricing.lump_sum_cap_cents", "greater than 0"),
        ("DK = 110000", "DK = -5", "pricing.host_threshold_cents.DK", "greater than 0"),
        ("DK = 110000", "dk = 110000", "pricing.host_threshold_cents.dk", "ISO 3166-1 alpha-2"),
        ("DK = 110000", "DK = 110000\nCH = 110000", "pricing.host_threshold_cents", "['CH'] are not participating"),
        (
            "halving_below_distance_km = 200.0",
            "halving_below_distance_km = 0",
            "pricing.halving_below_distance_km",
            "greater than 0",
        ),
        ("[14, 25]", "[14, 35]", "deadlines.report_reminder_days", "strictly between 0 and report_days"),
        (
            "payment_sla_days = 10",
            "payment_sla_days = 100",
            "deadlines.payment_confirmation_max_days",
            "at least payment_sla_days",
        ),
        ('"UA",', '"UA", "ZZ",', "eligibility.participating_countries[38]", "unknown country code"),
        ('"UA",', '"UA", "ua",', "eligibility.participating_countries[38]", "ISO 3166-1 alpha-2"),
        ("min_working_days = 3", "min_working_days = 25", "eligibility.min_working_days", "cannot fit in a stay"),
        ("max_stay_months = 1", "max_stay_months = 0", "eligibility.max_stay_months", "greater than or equal to 1"),
        (
            "application_lead_days = 10",
            "application_lead_days = -1",
            "eligibility.application_lead_days",
            "greater than or equal to 0",
        ),
        ("application_lead_days = 10", "", "eligibility.application_lead_days", "required field is missing"),
        (
            'visitor_types = ["cluster_organisation"',
            'visitor_types = ["university", "cluster_organisation"',
            "eligibility.visitor_types[0]",
            "'cluster_organisation'",
        ),
        (
            'profiled_member_visitor_types = ["sme"]',
            'profiled_member_visitor_types = ["large_company"]',
            "eligibility.profiled_member_visitor_types",
            "are not visitor_types",
        ),
        (
            'cluster_member_visitor_types = ["scale_up_support"]',
            'cluster_member_visitor_types = ["public_authority"]',
            "eligibility.cluster_member_visitor_types",
            "are not visitor_types",
        ),
        (
            'cluster_member_visitor_types = ["scale_up_support"]',
            "",
            "eligibility.cluster_member_visitor_types",
            "required in policy files",
        ),
        (
            "cancelled_uses_visit = false",
            "cancelled_uses_visit = 0",
            "eligibility.cancelled_uses_visit",
            "valid boolean",
        ),
        ("cancelled_uses_visit = false", "", "eligibility.cancelled_uses_visit", "required in policy files"),
        ('kind = "lump_sum"', "", "pricing.kind", "required in policy files"),
        ('kind = "lump_sum"', 'kind = "flat_rate"', "pricing.kind", "must be one of lump_sum, unit_cost"),
        ("effective_from = 2022-02-01", "effective_from = 20220201", "effective_from", "valid date"),
        ('version = "2022.1"', 'version = "2022.2"', "version", "as the file name says"),
    ],
)
def test_a_bad_lump_sum_policy_file_is_refused_with_the_field_named(
    tmp_path: Path, old: str, new: str, field: str, rule: str
) -> None:
    """Each broken rule of a ClusterXchange file is refused naming the file, the field path and the rule."""
    path = _write(tmp_path, CLUSTERXCHANGE_FILE, old, new)
    with pytest.raises(PolicyFileError) as refused:
        load_policy_file(path)
    problems = {p.field: p.rule for p in refused.value.problems}
    assert field in problems, refused.value
    assert rule in problems[field]
    assert str(path) in str(refused.value)
    assert f"{field}: {problems[field]}" in str(refused.value)


@pytest.mark.parametrize(
    ("old", "new", "field", "rule"),
    [
        ("from_km = 500", "from_km = 50", "pricing.travel_bands", "must strictly increase"),
        (
            "standard_cents = 2300",
            "standard_cents = -2300",
            "pricing.travel_bands[0].standard_cents",
            "greater than or equal to 0",
        ),
        ("green_cents = 21000", "green_cents = 210.00", "pricing.travel_bands[1].green_cents", "valid integer"),
        ("first_day = 15", "first_day = 16", "pricing.subsistence_tiers[1]", "without gaps or overlaps"),
        (
            "daily_cents = [16000, 11200]",
            "daily_cents = [16000]",
            "pricing.country_groups.group_2.daily_cents",
            "one daily rate per subsistence tier",
        ),
        (
            'countries = ["AT",',
            'countries = ["DK", "AT",',
            "pricing.country_groups.group_2.countries",
            "already in group group_1",
        ),
        ('countries = ["AT",', 'countries = ["CH", "AT",', "pricing.country_groups", "['CH'] are not participating"),
        ('"PL", "RO",', '"RO",', "pricing.country_groups", "['PL'] have no group"),
        (
            'kind = "unit_cost"',
            'kind = "unit_cost"\ndefault_country_group = "group_9"',
            "pricing.default_country_group",
            "not one of the country_groups",
        ),
        (
            'kind = "unit_cost"',
            'kind = "unit_cost"\nlump_sum_cap_cents = 1',
            "pricing.lump_sum_cap_cents",
            "unknown field",
        ),
        ('kind = "unit_cost"', 'kind = "unit_cost"\ncap_cents = 0', "pricing.cap_cents", "greater than 0"),
    ],
)
def test_a_bad_unit_cost_policy_file_is_refused_with_the_field_named(
    tmp_path: Path, old: str, new: str, field: str, rule: str
) -> None:
    """Each broken rule of an Erasmus+-style file is refused naming the field path inside the unit-cost tables."""
    with pytest.raises(PolicyFileError) as refused:
        load_policy_file(_write(tmp_path, ERASMUS_FILE, old, new))
    problems = {p.field: p.rule for p in refused.value.problems}
    assert field in problems, refused.value
    assert rule in problems[field]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    """A file with three unrelated mistakes is refused once, listing all three."""
    path = _write(tmp_path, CLUSTERXCHANGE_FILE, "lump_sum_cap_cents = 110000", "lump_sum_cap_cents = -1")
    path.write_text(
        path.read_text().replace("signature_days = 14", "signature_days = 0").replace("DK = 110000", "DK = 0")
    )
    with pytest.raises(PolicyFileError) as refused:
        load_policy_file(path)
    assert {p.field for p in refused.value.problems} == {
        "pricing.lump_sum_cap_cents",
        "pricing.host_threshold_cents.DK",
        "deadlines.signature_days",
    }


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A missing file is a PolicyFileError naming the path, not a bare OSError."""
    with pytest.raises(PolicyFileError, match="cannot be read"):
        load_policy_file(tmp_path / "clusterxchange-9.9.toml")


def test_country_codes_are_checked_against_the_calendar_only_when_loading_a_file() -> None:
    """A policy deserialised from a history is not re-judged against today's calendar data."""
    data = load_policy("2022.1").model_dump(mode="json")
    data["eligibility"]["participating_countries"].append("ZZ")
    assert "ZZ" in Policy.model_validate(data).eligibility.participating_countries


def test_load_policy_by_version_is_cached_and_names_known_versions() -> None:
    """load_policy returns the same object for a version and lists the known versions for an unknown one."""
    assert load_policy("2022.1") is load_policy("2022.1") is load_policy()
    with pytest.raises(UnknownPolicyVersion, match=r"known: 2022\.1"):
        load_policy("1999.1")
    with pytest.raises(UnknownPolicyVersion):
        load_policy("../policies/clusterxchange-2022.1")


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    """A catalogue of three versions taking effect in 2022, 2024 and 2025, plus a non-ClusterXchange file."""
    shutil.copy(CLUSTERXCHANGE_FILE, tmp_path)
    for version, effective_from in (("2024.1", "2024-01-01"), ("2025.1", "2025-07-01")):
        text = CLUSTERXCHANGE_FILE.read_text().replace('version = "2022.1"', f'version = "{version}"')
        text = text.replace("effective_from = 2022-02-01", f"effective_from = {effective_from}")
        (tmp_path / f"clusterxchange-{version}.toml").write_text(text)
    _write(tmp_path, ERASMUS_FILE, "effective_from = 2021-01-01", "effective_from = 2030-01-01")
    return tmp_path


@pytest.mark.parametrize(
    ("on", "version"),
    [
        (date(2022, 2, 1), "2022.1"),
        (date(2023, 12, 31), "2022.1"),
        (date(2024, 1, 1), "2024.1"),
        (date(2025, 6, 30), "2024.1"),
        (date(2025, 7, 1), "2025.1"),
        (date(2031, 1, 1), "2025.1"),  # the Erasmus+ file is never a ClusterXchange version
    ],
)
def test_policy_in_force_is_the_latest_that_has_started(catalogue: Path, on: date, version: str) -> None:
    """policy_in_force picks the version with the latest effective_from not after the date."""
    assert policy_in_force(on, catalogue).version == version


def test_no_policy_is_in_force_before_the_first(catalogue: Path) -> None:
    """Before the first version takes effect there is no policy in force, and the error says when it starts."""
    with pytest.raises(UnknownPolicyVersion, match="2022-02-01"):
        policy_in_force(date(2022, 1, 31), catalogue)


def test_two_versions_starting_the_same_day_are_refused(catalogue: Path) -> None:
    """Two versions with the same effective_from are ambiguous: refused on effective_from, naming both."""
    text = (catalogue / "clusterxchange-2025.1.toml").read_text().replace('"2025.1"', '"2025.2"')
    (catalogue / "clusterxchange-2025.2.toml").write_text(text)
    with pytest.raises(PolicyFileError, match=r"effective_from: versions 2025\.1, 2025\.2"):
        policy_in_force(date(2026, 1, 1), catalogue)


def test_the_shipped_policy_in_force_today_is_the_pilot() -> None:
    """With only 2022.1 shipped, it is in force from 1 February 2022 on."""
    assert policy_in_force(date(2026, 11, 29)).version == "2022.1"
