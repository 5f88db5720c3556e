"""Screening rules R1-R6 and the lead time: every failing rule is reported, with its field, at every boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from rules.calendar import last_day_of_stay
from rules.screening import (
    cluster_member_failures,
    country_failures,
    host_type_failures,
    lead_time_failures,
    membership_failures,
    screen,
    stay_failures,
    visit_failures,
    visitor_type_failures,
)
from schemas.exchange import ApplicationInput
from schemas.organisations import Organisation, OrganisationType
from schemas.policy import EligibilityPolicy, load_policy, load_policy_file
from schemas.screening import CheckVisitResult, VisitUse
from schemas.stages import Stage
from tests.factories import application

POLICY = load_policy()
RULES = POLICY.eligibility
ERASMUS = load_policy_file(Path(__file__).parents[2] / "schemas" / "policies" / "erasmus-staff-2021.toml")


def _org(role: str, **changes: Any) -> Organisation:
    """The factory's visitor or host with some fields changed, validated again."""
    org = getattr(application(), role)
    return Organisation.model_validate(org.model_dump() | changes)


def _app(visitor: dict[str, Any] | None = None, host: dict[str, Any] | None = None, **fields: Any) -> ApplicationInput:
    """The factory's application with fields of the visitor and host changed, validated again."""
    data = application(**fields).model_dump()
    data["visitor"] |= visitor or {}
    data["host"] |= host or {}
    return ApplicationInput.model_validate(data)


def _keys(failures: Any) -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in failures}


def test_a_valid_application_passes_every_rule() -> None:
    """A transnational exchange of five working days between eligible organisations is eligible."""
    result = screen(application(), POLICY)
    assert result.eligible, result.failures
    assert result.working_days == 5
    assert result.policy_version == POLICY.version


@pytest.mark.parametrize(
    ("org_type", "refused", "wording"),
    [
        (OrganisationType.CLUSTER_ORGANISATION, False, ""),
        (OrganisationType.BUSINESS_NETWORK, False, ""),
        (OrganisationType.SCALE_UP_SUPPORT, False, ""),
        (OrganisationType.SME, False, ""),
        (OrganisationType.TRAINING_PROVIDER, True, "may host exchanges but not visit"),
        (OrganisationType.LARGE_COMPANY, True, "may host exchanges but not visit"),
        (OrganisationType.PUBLIC_AUTHORITY, True, "may host exchanges but not visit"),
    ],
)
def test_r1_visitor_types(org_type: OrganisationType, refused: bool, wording: str) -> None:
    """R1: the four visitor types may visit; the host-only types are refused on visitor.type, saying why."""
    failures = visitor_type_failures(_org("visitor", type=org_type, member_of_profiled_cluster=True), RULES)
    assert _keys(failures) == ({("R1", "visitor.type")} if refused else set())
    assert all(wording in f.message and "the visitor must be" in f.message for f in failures)


SCALE_UP = OrganisationType.SCALE_UP_SUPPORT


@pytest.mark.parametrize(
    ("org_type", "cluster_member", "profiled_member", "refused"),
    [
        (SCALE_UP, False, False, True),
        (SCALE_UP, True, False, False),
        (SCALE_UP, False, True, False),  # a member of a profiled cluster is a cluster member
        (OrganisationType.CLUSTER_ORGANISATION, False, False, False),  # asked of scaling-up support only
        (OrganisationType.BUSINESS_NETWORK, False, False, False),
        (OrganisationType.SME, False, True, False),  # R3 speaks for SMEs
    ],
)
def test_r1_scaling_up_support_visits_only_as_a_cluster_member(
    org_type: OrganisationType, cluster_member: bool, profiled_member: bool, refused: bool
) -> None:
    """R1: a scaling-up support organisation visits only as a cluster member; refused on visitor.cluster_member."""
    visitor = _org("visitor", type=org_type, cluster_member=cluster_member, member_of_profiled_cluster=profiled_member)
    failures = cluster_member_failures(visitor, RULES)
    assert _keys(failures) == ({("R1", "visitor.cluster_member")} if refused else set())


def test_r1_cluster_membership_through_screen() -> None:
    """screen() refuses a non-member scaling-up support visitor with a forwardable sentence; a host needs no
    membership (the factory's host is a non-member scaling-up support organisation)."""
    app = _app(visitor={"type": "scale_up_support", "name": "Brno Robotics Hub", "cluster_member": False})
    failures = screen(app, POLICY).failures
    assert _keys(failures) == {("R1", "visitor.cluster_member")}
    assert failures[0].message == (
        "Brno Robotics Hub is a scaling-up support organisation, which may visit only as a member of a cluster; "
        "the application does not record it as one."
    )
    assert screen(_app(visitor={"type": "scale_up_support", "cluster_member": True}), POLICY).eligible
    assert application().host.type is SCALE_UP
    assert not application().host.cluster_member
    assert screen(application(), POLICY).eligible


def test_r1_cluster_membership_is_policy_data() -> None:
    """The rule is the policy's list: the Erasmus+ file lists no type, so a non-member visits under it."""
    visitor = _org("visitor", type=SCALE_UP, cluster_member=False)
    assert ERASMUS.eligibility.cluster_member_visitor_types == frozenset()
    assert cluster_member_failures(visitor, ERASMUS.eligibility) == []


@pytest.mark.parametrize("org_type", list(OrganisationType))
def test_r2_every_programme_type_may_host(org_type: OrganisationType) -> None:
    """R2: every organisation type, host-only types included, may host under the 2022.1 policy."""
    assert host_type_failures(_org("host", type=org_type, member_of_profiled_cluster=True), RULES) == []


def test_r2_refuses_a_type_the_policy_does_not_list_as_host() -> None:
    """R2: a host type missing from the policy's host_types is refused on host.type, listing the allowed ones."""
    rules = RULES.model_copy(update={"host_types": RULES.host_types - {OrganisationType.PUBLIC_AUTHORITY}})
    failures = host_type_failures(_org("host", type=OrganisationType.PUBLIC_AUTHORITY), rules)
    assert _keys(failures) == {("R2", "host.type")}
    assert "cannot host" in failures[0].message
    assert "a training provider" in failures[0].message


SME, CLUSTER = OrganisationType.SME, OrganisationType.CLUSTER_ORGANISATION


@pytest.mark.parametrize(
    ("visitor_type", "visitor_member", "host_type", "host_member", "approved", "expected"),
    [
        (SME, True, CLUSTER, False, False, set()),
        (SME, False, CLUSTER, False, False, {("R3", "visitor.member_of_profiled_cluster")}),
        (CLUSTER, False, CLUSTER, False, False, set()),  # membership is asked of SMEs only
        (CLUSTER, True, SME, True, False, set()),
        (CLUSTER, True, SME, False, False, {("R3", "host.member_of_profiled_cluster")}),
        (CLUSTER, True, SME, False, True, set()),  # a non-member SME hosts with the agency's prior approval
        (
            SME,
            False,
            SME,
            False,
            False,
            {("R3", "visitor.member_of_profiled_cluster"), ("R3", "host.member_of_profiled_cluster")},
        ),
    ],
)
def test_r3_cluster_membership(
    visitor_type: OrganisationType,
    visitor_member: bool,
    host_type: OrganisationType,
    host_member: bool,
    approved: bool,
    expected: set[tuple[str, str]],
) -> None:
    """R3: an SME visits only as a member of a profiled cluster and hosts without membership only with approval."""
    visitor = _org("visitor", type=visitor_type, member_of_profiled_cluster=visitor_member)
    host = _org("host", type=host_type, member_of_profiled_cluster=host_member)
    assert _keys(membership_failures(visitor, host, RULES, agency_approved_host=approved)) == expected


def test_r3_approval_reaches_screening() -> None:
    """screen() passes the agency's approval for a non-member SME host to R3."""
    app = _app(host={"type": "sme", "member_of_profiled_cluster": False})
    assert _keys(screen(app, POLICY).failures) == {("R3", "host.member_of_profiled_cluster")}
    assert screen(app, POLICY, agency_approved_host=True).eligible


# The 2022.1 file lists AT first, SE last of the EU-27, IS first and UA last of the other COSME countries.
@pytest.mark.parametrize(
    ("country", "participating"),
    [
        ("AT", True),
        ("SE", True),
        ("IS", True),
        ("UA", True),
        ("XK", True),
        ("AL", True),
        ("CH", False),
        ("GB", False),
        ("NO", False),
        ("LI", False),
        ("RU", False),
    ],
)
@pytest.mark.parametrize("role", ["visitor", "host"])
def test_r4_cosme_country_list_edges(country: str, participating: bool, role: str) -> None:
    """R4: the list's first and last entries and Kosovo pass; near misses (CH, GB, NO, LI) fail on that role."""
    other_country = "PL" if country != "PL" else "FR"
    visitor = _org("visitor", country=country if role == "visitor" else other_country)
    host = _org("host", country=country if role == "host" else other_country)
    expected = set() if participating else {("R4", f"{role}.country")}
    failures = country_failures(visitor, host, RULES)
    assert _keys(failures) == expected
    assert all("the COSME participating countries" in f.message for f in failures)


@pytest.mark.parametrize(
    ("country", "participating"),
    [("NO", True), ("LI", True), ("TR", True), ("RS", True), ("XK", False), ("UA", False), ("CH", False)],
)
def test_r4_follows_the_policy_country_list(country: str, participating: bool) -> None:
    """R4 reads the list from the policy: the Erasmus+ file admits NO and LI but not XK or UA."""
    failures = country_failures(_org("visitor", country="PL"), _org("host", country=country), ERASMUS.eligibility)
    assert _keys(failures) == (set() if participating else {("R4", "host.country")})


@pytest.mark.parametrize(("visitor_country", "host_country", "refused"), [("PL", "PL", True), ("PL", "FR", False)])
def test_r5_transnational(visitor_country: str, host_country: str, refused: bool) -> None:
    """R5: organisations registered in the same country are refused on host.country."""
    failures = country_failures(_org("visitor", country=visitor_country), _org("host", country=host_country), RULES)
    assert _keys(failures) == ({("R5", "host.country")} if refused else set())


@pytest.mark.parametrize(
    ("host_country", "start", "end", "days", "eligible"),
    [
        # Tue 12 to Fri 15 May 2026 with Ascension (Thu 14 May, a French holiday) inside: exactly 3.
        ("FR", "2026-05-12", "2026-05-15", 3, True),
        # Wed 13 to Fri 15 May 2026 in France: 2 working days, refused.
        ("FR", "2026-05-13", "2026-05-15", 2, False),
        # The same dates in Poland, where Ascension is a working day: the host's calendar decides.
        ("PL", "2026-05-13", "2026-05-15", 3, True),
        # Thu 1 May 2025 (Labour Day in France) to Mon 5 May: weekend and holiday leave 2.
        ("FR", "2025-05-01", "2025-05-05", 2, False),
        # Wed 7 to Fri 9 January 2026, no holiday: exactly 3.
        ("FR", "2026-01-07", "2026-01-09", 3, True),
    ],
)
def test_r6_counts_working_days_on_the_host_calendar(
    host_country: str, start: str, end: str, days: int, eligible: bool
) -> None:
    """R6: weekends and the host country's public holidays do not count; 3 working days pass, 2 fail."""
    app = _app(
        visitor={"country": "FR" if host_country == "PL" else "PL"},
        host={"country": host_country},
        start_date=start,
        end_date=end,
    )
    result = screen(app, POLICY)
    assert result.working_days == days
    assert result.eligible is eligible, result.failures
    assert (("R6", "end_date") in _keys(result.failures)) is not eligible


@pytest.mark.parametrize(("days", "refused"), [(2, True), (3, False), (20, False)])
def test_r6_minimum_working_days_boundary(days: int, refused: bool) -> None:
    """R6 on the computed fact: 2 working days are refused, 3 are enough."""
    failures = stay_failures(date(2026, 3, 2), date(2026, 3, 20), days, "FR", RULES)
    assert _keys(failures) == ({("R6", "end_date")} if refused else set())


# DOMAIN.md: '"1 month" is calendar: start date plus one month'. The end date may be that day itself; a
# month without that day number clamps to its last day (ADR 0010).
@pytest.mark.parametrize(
    ("start", "end", "refused"),
    [
        (date(2026, 3, 2), date(2026, 4, 2), False),  # start plus one calendar month, that day included
        (date(2026, 3, 2), date(2026, 4, 3), True),  # a month and a day
        (date(2026, 1, 1), date(2026, 2, 1), False),
        (date(2026, 1, 1), date(2026, 2, 2), True),
        (date(2026, 1, 31), date(2026, 2, 28), False),  # no 31 February: clamped to the month's last day
        (date(2026, 1, 31), date(2026, 3, 1), True),  # never spills into March
        (date(2026, 1, 30), date(2026, 2, 28), False),
        (date(2026, 1, 29), date(2026, 2, 28), False),
        (date(2026, 1, 29), date(2026, 3, 1), True),
        (date(2028, 1, 31), date(2028, 2, 29), False),  # leap year: clamped to 29 February
        (date(2028, 1, 31), date(2028, 3, 1), True),
        (date(2028, 1, 29), date(2028, 2, 29), False),  # leap year: 29 February exists, no clamping
        (date(2028, 1, 29), date(2028, 3, 1), True),
        (date(2028, 2, 29), date(2028, 3, 29), False),  # from a leap day
        (date(2028, 2, 29), date(2028, 3, 30), True),
        (date(2026, 2, 28), date(2026, 3, 28), False),  # the last day of February is not "the month's end"
        (date(2026, 2, 28), date(2026, 3, 29), True),
        (date(2026, 3, 31), date(2026, 4, 30), False),
        (date(2026, 3, 31), date(2026, 5, 1), True),
        (date(2026, 11, 30), date(2026, 12, 30), False),
        (date(2026, 11, 30), date(2026, 12, 31), True),
        (date(2026, 12, 31), date(2027, 1, 31), False),  # across the year
        (date(2026, 12, 31), date(2027, 2, 1), True),
    ],
)
def test_r6_at_most_one_calendar_month(start: date, end: date, refused: bool) -> None:
    """R6: a stay may end on its start date plus one calendar month (clamped at month ends) and not a day later."""
    failures = stay_failures(start, end, 20, "FR", RULES)
    assert _keys(failures) == ({("R6", "end_date")} if refused else set())
    assert all(f"must end by {last_day_of_stay(start, 1)}" in f.message for f in failures)


@pytest.mark.parametrize(
    ("start", "months", "last_day"),
    [
        (date(2026, 3, 2), 1, date(2026, 4, 2)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 1, 31), 2, date(2026, 3, 31)),  # two months from the 31st: March has one
        (date(2027, 12, 31), 2, date(2028, 2, 29)),  # across the year into a leap February
        (date(2026, 8, 31), 12, date(2027, 8, 31)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
    ],
)
def test_last_day_of_stay_adds_calendar_months_clamped_to_the_month_end(
    start: date, months: int, last_day: date
) -> None:
    """The month arithmetic itself, for the policy's max_stay_months of 1 and more: the day number is kept, or
    the target month's last day when it has no such day."""
    assert last_day_of_stay(start, months) == last_day


def test_r6_one_month_end_to_end() -> None:
    """R6 through screen(): 2 March to 2 April is one calendar month and allowed; 2 March to 3 April is not."""
    assert screen(application(start_date="2026-03-02", end_date="2026-04-02"), POLICY).eligible
    failures = screen(application(start_date="2026-03-02", end_date="2026-04-03"), POLICY).failures
    assert _keys(failures) == {("R6", "end_date")}
    assert "it must end by 2026-04-02 (it ends on 2026-04-03)" in failures[0].message


@pytest.mark.parametrize(
    ("submitted_on", "refused"),
    [
        (date(2026, 1, 2), False),  # exactly 10 days before Mon 12 January
        (date(2026, 1, 3), True),  # 9 days
        (date(2026, 1, 12), True),  # the day the stay starts
        (date(2026, 1, 14), True),  # after it started
        (date(2025, 12, 1), False),
    ],
)
def test_lead_time_boundary(submitted_on: date, refused: bool) -> None:
    """R13 (policy): an application reaches us at least 10 days before the stay starts; 9 days is too late."""
    failures = lead_time_failures(date(2026, 1, 12), submitted_on, RULES)
    assert _keys(failures) == ({("R13", "start_date")} if refused else set())


def test_lead_time_counts_from_the_original_submission_date() -> None:
    """screen() checks the lead time from the submission date it is given, and only then."""
    app = application(start_date="2026-01-12", end_date="2026-01-16")
    assert ("R13", "start_date") in _keys(screen(app, POLICY, submitted_on=date(2026, 1, 7)).failures)
    assert screen(app, POLICY, submitted_on=date(2025, 12, 1)).eligible
    assert screen(app, POLICY).eligible


def test_every_failing_rule_is_reported_not_just_the_first() -> None:
    """An application breaking R1, R3, R4, R5, R6 and the lead time at once gets every reason, each forwardable."""
    app = _app(
        visitor={"country": "CH", "type": "large_company"},
        host={"country": "CH", "type": "sme", "member_of_profiled_cluster": False},
        start_date="2026-01-07",
        end_date="2026-01-08",
    )
    failures = screen(app, POLICY, submitted_on=date(2026, 1, 6)).failures
    assert _keys(failures) == {
        ("R1", "visitor.type"),
        ("R3", "host.member_of_profiled_cluster"),
        ("R4", "visitor.country"),
        ("R4", "host.country"),
        ("R5", "host.country"),
        ("R6", "end_date"),
        ("R13", "start_date"),
    }
    assert all(f.message.endswith(".") and f.message[0].isupper() for f in failures)


def test_a_policy_without_membership_rules_asks_for_none() -> None:
    """R3 is data: a policy listing no membership types accepts non-member SMEs on both sides."""
    rules = EligibilityPolicy.model_validate(
        RULES.model_dump() | {"profiled_member_visitor_types": [], "profiled_member_or_approved_host_types": []}
    )
    visitor = _org("visitor", type="sme", member_of_profiled_cluster=False)
    host = _org("host", type="sme", member_of_profiled_cluster=False)
    assert membership_failures(visitor, host, rules) == []


_CLAIMED = datetime(2026, 2, 3, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            CheckVisitResult(
                organisation_id="vo-1",
                visit=VisitUse.HELD,
                held_by_application_id="app-first",
                claimed_at=_CLAIMED,
                holder_stage=Stage.AGREEMENT,
            ),
            "Krakow Photonics Cluster's one visit in the scheme is held by application app-first (claimed on "
            "2026-02-03, now at AGREEMENT). An organisation may visit only once; should that exchange end without "
            "the stay taking place, the organisation may apply again.",
        ),
        (
            CheckVisitResult(
                organisation_id="vo-1",
                visit=VisitUse.USED,
                held_by_application_id="app-first",
                claimed_at=_CLAIMED,
                holder_stage=Stage.PAID,
            ),
            "Krakow Photonics Cluster has already used its one visit in the scheme: application app-first "
            "(claimed on 2026-02-03) was paid. An organisation may visit only once.",
        ),
        (
            CheckVisitResult(
                organisation_id="vo-1",
                visit=VisitUse.USED,
                held_by_application_id="app-first",
                claimed_at=_CLAIMED,
                holder_stage=Stage.FORFEITED,
            ),
            "Krakow Photonics Cluster has already used its one visit in the scheme: application app-first "
            "(claimed on 2026-02-03) ended FORFEITED and still counts. An organisation may visit only once.",
        ),
        (
            CheckVisitResult(
                organisation_id="vo-1",
                visit=VisitUse.HELD,
                held_by_application_id="app-legacy",
                claimed_at=_CLAIMED,
            ),
            "Krakow Photonics Cluster's one visit in the scheme is held by application app-legacy (claimed on "
            "2026-02-03, stage not on record). An organisation may visit only once; should that exchange end "
            "without the stay taking place, the organisation may apply again.",
        ),
    ],
)
def test_r7_read_early_names_the_other_application(check: CheckVisitResult, message: str) -> None:
    """R7 at SCREENING: a held or used visit is one failure on visitor.organisation_id naming the other
    application, when it claimed the visit and how it stands, in a sentence an officer can forward."""
    failures = visit_failures(application().visitor, check)
    assert [(f.rule, f.field, f.message) for f in failures] == [("R7", "visitor.organisation_id", message)]


def test_r7_read_early_passes_a_free_visit() -> None:
    """A free visit adds no failure."""
    check = CheckVisitResult(organisation_id="vo-1", visit=VisitUse.FREE)
    assert visit_failures(application().visitor, check) == []
