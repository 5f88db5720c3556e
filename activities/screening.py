"""SCREENING: the eligibility rules R1-R6 (R7, once per organisation, is enforced at funding time).

Screening returns every rule that fails, never just the first, each with the field it looked at and a
sentence a programme officer can forward to the applicant.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.calendar import add_months, working_days
from activities.digest import input_digest
from activities.geo import great_circle_km
from schemas.activities import ResolvePolicyInput, ScreenApplicationInput, ScreeningResult
from schemas.errors import ErrorType
from schemas.exchange import ApplicationInput, RuleFailure
from schemas.organisations import OrganisationType
from schemas.policy import DEFAULT_POLICY_VERSION, Policy, UnknownPolicyVersion, load_policy


def screen(application: ApplicationInput, policy: Policy, submitted_on: date | None = None) -> ScreeningResult:
    """Apply R1-R6 of `policy` to an application; pure, so tests and dry runs call it directly."""
    rules = policy.eligibility
    failures: list[RuleFailure] = []
    visitor, host = application.visitor, application.host

    if visitor.type not in rules.visitor_types:
        failures.append(
            RuleFailure(
                rule="R1",
                field="visitor.type",
                message=f"A {visitor.type.value.replace('_', ' ')} cannot be the visiting organisation; "
                "visitors must be a cluster or business-network organisation, "
                "a scaling-up support organisation or an SME.",
            )
        )
    if host.type not in rules.host_types:
        failures.append(
            RuleFailure(
                rule="R2",
                field="host.type",
                message=f"A {host.type.value} cannot host an exchange.",
            )
        )
    for role, org in (("visitor", visitor), ("host", host)):
        if org.type is OrganisationType.SME and not org.member_of_profiled_cluster and role == "visitor":
            failures.append(
                RuleFailure(
                    rule="R3",
                    field=f"{role}.member_of_profiled_cluster",
                    message=f"The SME {org.name} must be a member of a cluster profiled on the European Cluster "
                    "Collaboration Platform.",
                )
            )
    for role, org in (("visitor", visitor), ("host", host)):
        if org.country not in rules.participating_countries:
            failures.append(
                RuleFailure(
                    rule="R4",
                    field=f"{role}.country",
                    message=f"{org.name} is registered in {org.country}, which is not a COSME participating country.",
                )
            )
    if visitor.country == host.country:
        failures.append(
            RuleFailure(
                rule="R5",
                field="host.country",
                message=f"The exchange must be transnational: both organisations are registered in {host.country}.",
            )
        )

    days = working_days(application.start_date, application.end_date, host.country)
    latest_end = add_months(application.start_date, rules.max_stay_months) - timedelta(days=1)
    if days < rules.min_working_days:
        failures.append(
            RuleFailure(
                rule="R6",
                field="end_date",
                message=f"The stay has {days} working day(s) in {host.country}; at least {rules.min_working_days} are "
                "required (weekends and the host country's public holidays do not count).",
            )
        )
    if application.end_date > latest_end:
        failures.append(
            RuleFailure(
                rule="R6",
                field="end_date",
                message=f"The stay may last at most {rules.max_stay_months} month(s): it must end by {latest_end}.",
            )
        )
    if submitted_on is not None:
        lead = (application.start_date - submitted_on).days
        if lead < rules.application_lead_days:
            failures.append(
                RuleFailure(
                    rule="R13",
                    field="start_date",
                    message=f"Applications must reach us at least {rules.application_lead_days} days before the stay "
                    f"starts; this one came {lead} day(s) before.",
                )
            )

    return ScreeningResult(
        eligible=not failures,
        failures=tuple(failures),
        working_days=days,
        distance_km=great_circle_km(visitor.latitude, visitor.longitude, host.latitude, host.longitude),
        policy_version=policy.version,
        input_digest=input_digest(application),
    )


@activity.defn(name="resolve_policy")
async def resolve_policy(request: ResolvePolicyInput) -> Policy:
    """The policy in force (or the version asked for), recorded in the workflow's history."""
    try:
        return load_policy(request.version or DEFAULT_POLICY_VERSION)
    except UnknownPolicyVersion as error:
        raise ApplicationError(str(error), type=ErrorType.INVALID_INPUT, non_retryable=True) from error


@activity.defn(name="screen_application")
async def screen_application(request: ScreenApplicationInput) -> ScreeningResult:
    return screen(request.application, request.policy, request.submitted_at.date())
