"""R8 lump sums: the published CLAMTEX figures, the cap, both halving triggers, re-pricing on actual days."""

from __future__ import annotations

from datetime import date

from activities.pricing import price
from schemas.exchange import ApplicationInput
from schemas.policy import load_policy
from tests.factories import BRATISLAVA, KRAKOW, VIENNA, application

POLICY = load_policy()


def _app_to(
    country: str, coords: dict[str, float], start: str, end: str, visitor_coords: dict[str, float] = KRAKOW
) -> ApplicationInput:
    app = application(start_date=start, end_date=end)
    return app.model_copy(
        update={
            "host": app.host.model_copy(update={"country": country, **coords}),
            "visitor": app.visitor.model_copy(update={"country": "SK" if country != "SK" else "PL", **visitor_coords}),
        }
    )


def test_five_working_days_at_a_780_threshold_pay_780() -> None:
    """CLAMTEX: a 5-working-day stay in a 780 EUR host country is paid 780 EUR."""
    result = price(_app_to("HR", {"latitude": 45.8150, "longitude": 15.9819}, "2026-01-12", "2026-01-16"), POLICY)
    assert (result.amount_cents, result.halved_because) == (78000, ())


def test_three_working_days_are_halved_to_390() -> None:
    """CLAMTEX: a 3-working-day stay at the same threshold is halved to 390 EUR."""
    result = price(_app_to("HR", {"latitude": 45.8150, "longitude": 15.9819}, "2026-01-14", "2026-01-16"), POLICY)
    assert result.amount_cents == 39000
    assert len(result.halved_because) == 1


def test_a_group_one_country_is_capped_at_1100() -> None:
    """The lump sum never exceeds the 1,100 EUR cap, even where the threshold is 1,100."""
    result = price(_app_to("DK", {"latitude": 55.6761, "longitude": 12.5683}, "2026-01-12", "2026-01-16"), POLICY)
    assert result.amount_cents == 110000


def test_organisations_closer_than_200_km_are_halved() -> None:
    """Bratislava to Vienna is about 55 km: the grant is halved even for a full week."""
    result = price(_app_to("AT", VIENNA, "2026-01-12", "2026-01-16", visitor_coords=BRATISLAVA), POLICY)
    assert result.distance_km < 200
    assert result.amount_cents == 95000 // 2


def test_payment_reprices_on_the_actual_days() -> None:
    """A 5-day stay cut to 3 working days is re-priced at the halved rate at payment time."""
    app = _app_to("HR", {"latitude": 45.8150, "longitude": 15.9819}, "2026-01-12", "2026-01-16")
    assert price(app, POLICY, actual_end_date=date(2026, 1, 14)).amount_cents == 39000
