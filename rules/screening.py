"""SCREENING: the eligibility rules R1-R6 and the application lead time (R13), and R7 read early.

R7 (an organisation visits once) is enforced by the atomic claim at FUNDING (activities/screening.py). So that a
second application does not take two reviewers' time before that claim refuses it, the workflow also asks
`check_visit` at SCREENING and turns its answer into a failure with `visit_failures`; the claim at FUNDING
still decides races between applications screened at the same time.

Screening returns every rule that fails, never just the first, each with the field it looked at and a
sentence a programme officer can forward to the applicant. Each rule is a small pure function of the
facts it needs (organisations, dates, the working-day count), so its boundaries are table-tested
without building whole applications; `screen` computes the facts and runs them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from rules.calendar import last_day_of_stay, working_days
from rules.digest import input_digest
from rules.geo import display_km, great_circle_km
from schemas.exchange import ApplicationInput, RuleFailure
from schemas.organisations import Organisation, OrganisationType
from schemas.policy import EligibilityPolicy, Policy
from schemas.screening import CheckVisitResult, ScreeningResult, VisitUse
from schemas.stages import Stage

_TYPE_NAMES = {
    OrganisationType.CLUSTER_ORGANISATION: "a cluster organisation",
    OrganisationType.BUSINESS_NETWORK: "a business-network organisation",
    OrganisationType.SCALE_UP_SUPPORT: "a scaling-up support organisation",
    OrganisationType.SME: "an SME",
    OrganisationType.TRAINING_PROVIDER: "a training provider",
    OrganisationType.LARGE_COMPANY: "a large company",
    OrganisationType.PUBLIC_AUTHORITY: "a public authority",
}
_ECCP = "a cluster profiled on the European Cluster Collaboration Platform"


def _one_of(types: Iterable[OrganisationType]) -> str:
    # In the enum's order, so the sentence does not change with the order of a frozenset.
    names = [_TYPE_NAMES[t] for t in OrganisationType if t in set(types)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def visitor_type_failures(visitor: Organisation, rules: EligibilityPolicy) -> list[RuleFailure]:
    """R1 (and R2's "host-only types cannot visit"): the visiting organisation's type."""
    if visitor.type in rules.visitor_types:
        return []
    allowed = _one_of(rules.visitor_types)
    if visitor.type in rules.host_types:
        reason = f"{visitor.name} is {_TYPE_NAMES[visitor.type]}, which may host exchanges but not visit"
    else:
        reason = f"{visitor.name} is {_TYPE_NAMES[visitor.type]}, which cannot take part as the visitor"
    return [RuleFailure(rule="R1", field="visitor.type", message=f"{reason}; the visitor must be {allowed}.")]


def cluster_member_failures(visitor: Organisation, rules: EligibilityPolicy) -> list[RuleFailure]:
    """R1: a visitor of a type the policy lists (scaling-up support organisations) visits only as a cluster
    member. A member of a profiled cluster (R3's flag) is a cluster member too, so either flag satisfies it."""
    if visitor.type not in rules.cluster_member_visitor_types:
        return []
    if visitor.cluster_member or visitor.member_of_profiled_cluster:
        return []
    return [
        RuleFailure(
            rule="R1",
            field="visitor.cluster_member",
            message=f"{visitor.name} is {_TYPE_NAMES[visitor.type]}, which may visit only as a member of a cluster; "
            "the application does not record it as one.",
        )
    ]


def host_type_failures(host: Organisation, rules: EligibilityPolicy) -> list[RuleFailure]:
    """R2: the hosting organisation's type (the visitor types plus the host-only ones)."""
    if host.type in rules.host_types:
        return []
    return [
        RuleFailure(
            rule="R2",
            field="host.type",
            message=f"{host.name} is {_TYPE_NAMES[host.type]}, which cannot host an exchange; the host must be "
            f"{_one_of(rules.host_types)}.",
        )
    ]


def membership_failures(
    visitor: Organisation, host: Organisation, rules: EligibilityPolicy, *, agency_approved_host: bool = False
) -> list[RuleFailure]:
    """R3: an SME visits only as a member of a profiled cluster, and hosts without membership only with the
    agency's prior approval. The application does not record that approval yet, so the workflow passes none
    (see docs/adr/0005-policy-as-data.md)."""
    failures = []
    if visitor.type in rules.profiled_member_visitor_types and not visitor.member_of_profiled_cluster:
        failures.append(
            RuleFailure(
                rule="R3",
                field="visitor.member_of_profiled_cluster",
                message=f"{visitor.name} is {_TYPE_NAMES[visitor.type]} and may visit only as a member of {_ECCP}.",
            )
        )
    needs_approval = host.type in rules.profiled_member_or_approved_host_types
    if needs_approval and not host.member_of_profiled_cluster and not agency_approved_host:
        failures.append(
            RuleFailure(
                rule="R3",
                field="host.member_of_profiled_cluster",
                message=f"{host.name} is {_TYPE_NAMES[host.type]} that is not a member of {_ECCP}; it may host "
                "only with the agency's prior approval, which is not on record for this application.",
            )
        )
    return failures


def country_failures(visitor: Organisation, host: Organisation, rules: EligibilityPolicy) -> list[RuleFailure]:
    """R4: both organisations registered in a participating country; R5: in different countries."""
    failures = [
        RuleFailure(
            rule="R4",
            field=f"{role}.country",
            message=f"{org.name} is registered in {org.country}, which is not among {rules.country_list_name}.",
        )
        for role, org in (("visitor", visitor), ("host", host))
        if org.country not in rules.participating_countries
    ]
    if visitor.country == host.country:
        failures.append(
            RuleFailure(
                rule="R5",
                field="host.country",
                message=f"The exchange must be transnational: {visitor.name} and {host.name} are both registered "
                f"in {host.country}.",
            )
        )
    return failures


def stay_failures(
    start_date: date, end_date: date, days: int, host_country: str, rules: EligibilityPolicy
) -> list[RuleFailure]:
    """R6: at least the minimum working days (`days`, counted on the host country's calendar) and at
    most the maximum calendar months, the stay being consecutive days from start to end."""
    failures = []
    if days < rules.min_working_days:
        failures.append(
            RuleFailure(
                rule="R6",
                field="end_date",
                message=f"The stay has {days} working day(s) in {host_country}; at least "
                f"{rules.min_working_days} are required (weekends and the host country's public holidays do not "
                "count).",
            )
        )
    latest_end = last_day_of_stay(start_date, rules.max_stay_months)
    if end_date > latest_end:
        failures.append(
            RuleFailure(
                rule="R6",
                field="end_date",
                message=f"The stay may last at most {rules.max_stay_months} calendar month(s): starting on "
                f"{start_date}, it must end by {latest_end} (it ends on {end_date}).",
            )
        )
    return failures


def visit_failures(visitor: Organisation, check: CheckVisitResult) -> list[RuleFailure]:
    """R7 read early: the visitor's one visit is already used, or held by another live exchange.

    `check` is `check_visit`'s answer for this application; the sentence names the other application so a
    programme officer can forward it as it is.
    """
    holder = check.held_by_application_id
    if check.visit is VisitUse.FREE or holder is None:
        return []
    claimed = f"claimed on {check.claimed_at.date().isoformat()}" if check.claimed_at else "claim date not on record"
    if check.visit is VisitUse.USED:
        outcome = "was paid" if check.holder_stage is Stage.PAID else f"ended {check.holder_stage} and still counts"
        message = (
            f"{visitor.name} has already used its one visit in the scheme: application {holder} ({claimed}) "
            f"{outcome}. An organisation may visit only once."
        )
    else:
        stage = f"now at {check.holder_stage}" if check.holder_stage else "stage not on record"
        message = (
            f"{visitor.name}'s one visit in the scheme is held by application {holder} ({claimed}, {stage}). An "
            "organisation may visit only once; should that exchange end without the stay taking place, the "
            "organisation may apply again."
        )
    return [RuleFailure(rule="R7", field="visitor.organisation_id", message=message)]


def lead_time_failures(start_date: date, submitted_on: date, rules: EligibilityPolicy) -> list[RuleFailure]:
    """R13 (policy choice): the application reaches us at least the lead time before the stay starts."""
    lead_days = (start_date - submitted_on).days
    if lead_days >= rules.application_lead_days:
        return []
    return [
        RuleFailure(
            rule="R13",
            field="start_date",
            message=f"Applications must reach us at least {rules.application_lead_days} days before the stay "
            f"starts; this one came {lead_days} day(s) before.",
        )
    ]


def screen(
    application: ApplicationInput,
    policy: Policy,
    submitted_on: date | None = None,
    *,
    agency_approved_host: bool = False,
) -> ScreeningResult:
    """Apply R1-R6 (and the lead time when `submitted_on` is given) of `policy`; pure, so tests and dry
    runs call it directly. R7 needs the database: see `visit_failures`."""
    rules = policy.eligibility
    visitor, host = application.visitor, application.host
    days = working_days(application.start_date, application.end_date, host.country)
    failures = [
        *visitor_type_failures(visitor, rules),
        *cluster_member_failures(visitor, rules),
        *host_type_failures(host, rules),
        *membership_failures(
            visitor, host, rules, agency_approved_host=agency_approved_host or application.host_agency_approved
        ),
        *country_failures(visitor, host, rules),
        *stay_failures(application.start_date, application.end_date, days, host.country, rules),
    ]
    if submitted_on is not None:
        failures.extend(lead_time_failures(application.start_date, submitted_on, rules))
    return ScreeningResult(
        eligible=not failures,
        failures=tuple(failures),
        working_days=days,
        # Recorded for people at 0.1 km; screening compares no distance (pricing compares the exact one).
        distance_km=display_km(great_circle_km(visitor.latitude, visitor.longitude, host.latitude, host.longitude)),
        policy_version=policy.version,
        input_digest=input_digest(application),
    )
