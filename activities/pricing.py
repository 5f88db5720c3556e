"""FUNDING (pricing): the R8 lump sum, from the policy's tables.

One lump sum for travel and stay: at most the host country's threshold and at most the cap; halved
when the stay has fewer than the policy's working days or the organisations are closer than its km.
At payment the same function re-prices on the actual days, never above what was held.
"""

from __future__ import annotations

from datetime import date

from temporalio import activity

from activities.calendar import working_days
from activities.digest import input_digest
from activities.geo import great_circle_km
from schemas.activities import PriceExchangeInput, PricingResult
from schemas.exchange import ApplicationInput
from schemas.policy import Policy


def price(application: ApplicationInput, policy: Policy, actual_end_date: date | None = None) -> PricingResult:
    rules = policy.pricing
    end = application.end_date if actual_end_date is None else actual_end_date
    days = working_days(application.start_date, end, application.host.country)
    distance_km = great_circle_km(
        application.visitor.latitude,
        application.visitor.longitude,
        application.host.latitude,
        application.host.longitude,
    )
    full_rate_cents = min(rules.threshold_for(application.host.country), rules.lump_sum_cap_cents)
    halved_because: list[str] = []
    if days < rules.halving_below_working_days:
        halved_because.append(f"stay of {days} working days is under {rules.halving_below_working_days}")
    if distance_km < rules.halving_below_distance_km:
        halved_because.append(f"distance of {distance_km} km is under {rules.halving_below_distance_km:g} km")
    # Halving applies once whatever the number of triggers; integer division keeps cents exact
    # (an odd cent goes to the budget, never to an overpayment).
    amount_cents = full_rate_cents // 2 if halved_because else full_rate_cents
    return PricingResult(
        amount_cents=amount_cents,
        full_rate_cents=full_rate_cents,
        halved_because=tuple(halved_because),
        working_days=days,
        distance_km=distance_km,
        policy_version=policy.version,
        input_digest=input_digest(application, str(end)),
    )


@activity.defn(name="price_exchange")
async def price_exchange(request: PriceExchangeInput) -> PricingResult:
    return price(request.application, request.policy, request.actual_end_date)
