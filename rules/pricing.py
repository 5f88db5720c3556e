"""FUNDING (pricing): the grant for an exchange, from the policy's pricing tables.

Two kinds of pricing, chosen by the policy's `pricing.kind`:
- `lump_sum` (ClusterXchange R8): one lump sum for travel and stay, the lower of the host country's
  threshold and the cap, halved once when the stay has fewer working days (host country's calendar) than
  the policy's threshold or the organisations are closer than its distance. The distance compared is the
  exact great-circle figure: 199.96 km is closer than 200 km, and exactly 200 km is not (DOMAIN.md: "less
  than 200 km apart" halves).
- `unit_cost` (Erasmus+ style): a travel amount by distance band (standard or green) plus a daily
  subsistence rate by host-country group, tiered by day of the stay, counted in calendar days of the
  stay; the total respects the policy's cap when it sets one.

The rules are pure functions of the computed facts (`lump_sum`, `unit_cost`), so their boundaries are
tested without inventing coordinates; `price` computes the facts and dispatches. Every price carries a
breakdown of human-readable lines, so it explains itself in the audit trail and in `cx explain`.
At payment the workflow re-prices on the actual days with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from rules.calendar import calendar_days, working_days
from rules.digest import input_digest
from rules.geo import display_km, format_km, great_circle_km
from schemas.exchange import ApplicationInput
from schemas.funding import PricingResult
from schemas.policy import LumpSumPricing, Policy, UnitCostPricing


@dataclass(frozen=True)
class Quote:
    """A priced grant. `full_rate_cents` is the amount before halving (R8); unit costs are never halved,
    so for them it equals `amount_cents`. `halved_because` is empty unless the lump sum was halved."""

    amount_cents: int
    full_rate_cents: int
    halved_because: tuple[str, ...]
    breakdown: tuple[str, ...]


def format_eur(amount_cents: int) -> str:
    """Integer cents as "1,100.00 EUR", without going through floats."""
    sign = "-" if amount_cents < 0 else ""
    euros, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{euros:,}.{cents:02d} EUR"


def lump_sum(days: int, distance_km: float, host_country: str, pricing: LumpSumPricing) -> Quote:
    """R8 on the facts: `days` are working days in the host country, `distance_km` the exact great-circle
    distance (never rounded before this comparison); min(host threshold, cap), halved once below the
    working-day or the distance threshold."""
    threshold_cents = pricing.threshold_for(host_country)
    listed = "" if host_country in pricing.host_threshold_cents else ", the default for countries not listed"
    full_rate_cents = min(threshold_cents, pricing.lump_sum_cap_cents)
    halved_because: list[str] = []
    if days < pricing.halving_below_working_days:
        halved_because.append(f"stay of {days} working days is under {pricing.halving_below_working_days}")
    limit_km = pricing.halving_below_distance_km
    if distance_km < limit_km:
        halved_because.append(f"distance of {format_km(distance_km, limit_km)} is under {limit_km:g} km")
    # Halving applies once whatever the number of triggers; integer division keeps cents exact
    # (an odd cent goes to the budget, never to an overpayment).
    amount_cents = full_rate_cents // 2 if halved_because else full_rate_cents
    breakdown = [
        f"host-country threshold {host_country}{listed}: {format_eur(threshold_cents)}",
        f"cap: {format_eur(pricing.lump_sum_cap_cents)}",
        f"full rate, the lower of the two: {format_eur(full_rate_cents)}",
    ]
    if halved_because:
        breakdown.append(f"halved once ({'; '.join(halved_because)}): {format_eur(amount_cents)}")
    breakdown.append(f"lump sum: {format_eur(amount_cents)}")
    return Quote(amount_cents, full_rate_cents, tuple(halved_because), tuple(breakdown))


def unit_cost(
    days: int,
    distance_km: float,
    host_country: str,
    pricing: UnitCostPricing,
    *,
    green_travel: bool = False,
) -> Quote:
    """Travel by distance band plus subsistence for `days` calendar days by host-country group, within the cap."""
    breakdown: list[str] = []
    travel_cents = _travel_cents(distance_km, pricing, green_travel, breakdown)
    subsistence_cents = _subsistence_cents(days, host_country, pricing, breakdown)
    total_cents = travel_cents + subsistence_cents
    amount_cents = total_cents
    if pricing.cap_cents is not None and total_cents > pricing.cap_cents:
        amount_cents = pricing.cap_cents
        breakdown.append(f"total {format_eur(total_cents)} is over the cap: {format_eur(pricing.cap_cents)}")
    breakdown.append(f"unit costs: {format_eur(amount_cents)}")
    return Quote(amount_cents, amount_cents, (), tuple(breakdown))


def _travel_cents(distance_km: float, pricing: UnitCostPricing, green_travel: bool, breakdown: list[str]) -> int:
    bands = pricing.travel_bands
    # The exact distance picks the band; the sentence shows it finely enough to agree with the band edges.
    index = max((i for i, band in enumerate(bands) if band.from_km <= distance_km), default=None)
    if index is None:
        shown = format_km(distance_km, bands[0].from_km)
        breakdown.append(f"travel: {shown} is under the first band ({bands[0].from_km} km): 0.00 EUR")
        return 0
    band = bands[index]
    edges = (band.from_km,) if index + 1 == len(bands) else (band.from_km, bands[index + 1].from_km)
    label = f"{band.from_km}-{bands[index + 1].from_km - 1} km" if index + 1 < len(bands) else f"{band.from_km}+ km"
    if green_travel and band.green_cents is not None:
        mode, cents = "green", band.green_cents
    elif green_travel:
        mode, cents = "green, no green rate in this band so standard", band.standard_cents
    else:
        mode, cents = "standard", band.standard_cents
    breakdown.append(f"travel {label} band ({mode}, {format_km(distance_km, *edges)}): {format_eur(cents)}")
    return cents


def _subsistence_cents(days: int, host_country: str, pricing: UnitCostPricing, breakdown: list[str]) -> int:
    group_name = pricing.group_for(host_country)
    if group_name is None:
        # Unreachable for an eligible application: the loader requires every participating country to
        # have a group. Said explicitly rather than guessed, should an ineligible one be priced.
        breakdown.append(f"subsistence: no daily rate for {host_country} in this policy: 0.00 EUR")
        return 0
    group = pricing.country_groups[group_name]
    total_cents = 0
    for tier, daily_cents in zip(pricing.subsistence_tiers, group.daily_cents, strict=True):
        tier_days = max(0, min(days, tier.last_day) - tier.first_day + 1)
        if tier_days:
            cents = tier_days * daily_cents
            total_cents += cents
            breakdown.append(
                f"subsistence {host_country} ({group_name}), days {tier.first_day}-{tier.first_day + tier_days - 1}: "
                f"{tier_days} x {format_eur(daily_cents)} = {format_eur(cents)}"
            )
    last_paid_day = pricing.subsistence_tiers[-1].last_day
    if days > last_paid_day:
        breakdown.append(f"days {last_paid_day + 1}-{days} are beyond the rate table (day {last_paid_day}): not paid")
    return total_cents


def price(
    application: ApplicationInput,
    policy: Policy,
    actual_end_date: date | None = None,
    *,
    green_travel: bool = False,
) -> PricingResult:
    """The grant under `policy`, on the planned end date or, at payment, the actual one.

    `green_travel` matters only to unit-cost pricing; the application does not record the travel mode yet,
    so the workflow prices standard travel.
    """
    end = application.end_date if actual_end_date is None else actual_end_date
    host_country = application.host.country
    days = working_days(application.start_date, end, host_country)
    stay_days = calendar_days(application.start_date, end)
    distance_km = great_circle_km(
        application.visitor.latitude,
        application.visitor.longitude,
        application.host.latitude,
        application.host.longitude,
    )
    pricing = policy.pricing
    if isinstance(pricing, LumpSumPricing):
        quote = lump_sum(days, distance_km, host_country, pricing)
    else:
        quote = unit_cost(stay_days, distance_km, host_country, pricing, green_travel=green_travel)
    # The digest keeps its earlier shape for standard travel, so re-pricing an old input reproduces it.
    digest_parts: tuple[str, ...] = (str(end), "green") if green_travel else (str(end),)
    return PricingResult(
        amount_cents=quote.amount_cents,
        full_rate_cents=quote.full_rate_cents,
        halved_because=quote.halved_because,
        working_days=days,
        distance_km=display_km(distance_km),
        policy_version=policy.version,
        input_digest=input_digest(application, *digest_parts),
        breakdown=(f"policy {policy.version}, {pricing.kind}", *quote.breakdown),
        calendar_days=stay_days,
    )
