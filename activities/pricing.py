"""FUNDING (pricing) as an activity: the grant priced again when an amendment changes the dates.

The pricing itself is rules/pricing.py's; FUNDING and PAYMENT price inside their own units of work.
"""

from __future__ import annotations

from temporalio import activity

from rules.pricing import price
from schemas.funding import PriceExchangeInput, PricingResult


@activity.defn(name="price_exchange")
async def price_exchange(request: PriceExchangeInput) -> PricingResult:
    return price(request.application, request.policy, request.actual_end_date)
