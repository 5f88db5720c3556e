"""Pricing: the R8 lump sum (CLAMTEX figures, cap, both halving triggers at their boundaries, re-pricing) and
Erasmus+ unit costs."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.geo import EARTH_RADIUS_KM, great_circle_km
from rules.pricing import format_eur, lump_sum, price, unit_cost
from rules.screening import screen
from schemas.exchange import ApplicationInput
from schemas.policy import LumpSumPricing, UnitCostPricing, load_policy, load_policy_file
from tests.factories import BRATISLAVA, KRAKOW, VIENNA, application

POLICY = load_policy()
ERASMUS = load_policy_file(Path(__file__).parents[2] / "schemas" / "policies" / "erasmus-staff-2021.toml")
assert isinstance(POLICY.pricing, LumpSumPricing)
assert isinstance(ERASMUS.pricing, UnitCostPricing)
LUMP = POLICY.pricing
UNIT = ERASMUS.pricing
ZAGREB = {"latitude": 45.8150, "longitude": 15.9819}
COPENHAGEN = {"latitude": 55.6761, "longitude": 12.5683}


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
    result = price(_app_to("HR", ZAGREB, "2026-01-12", "2026-01-16"), POLICY)
    assert (result.amount_cents, result.halved_because) == (78000, ())
    assert result.breakdown[-1] == "lump sum: 780.00 EUR"


def test_three_working_days_are_halved_to_390() -> None:
    """CLAMTEX: a 3-working-day stay at the same threshold is halved to 390 EUR."""
    result = price(_app_to("HR", ZAGREB, "2026-01-14", "2026-01-16"), POLICY)
    assert result.amount_cents == 39000
    assert result.halved_because == ("stay of 3 working days is under 5",)


def test_a_group_one_country_is_capped_at_1100() -> None:
    """The lump sum never exceeds the 1,100 EUR cap, even where the threshold is 1,100."""
    result = price(_app_to("DK", COPENHAGEN, "2026-01-12", "2026-01-16"), POLICY)
    assert result.amount_cents == 110000


def test_organisations_closer_than_200_km_are_halved() -> None:
    """Bratislava to Vienna is about 55 km: the grant is halved even for a full week."""
    result = price(_app_to("AT", VIENNA, "2026-01-12", "2026-01-16", visitor_coords=BRATISLAVA), POLICY)
    assert result.distance_km < 200
    assert result.amount_cents == 95000 // 2


def test_payment_reprices_on_the_actual_days() -> None:
    """A 5-day stay cut to 3 working days is re-priced at the halved rate at payment time."""
    app = _app_to("HR", ZAGREB, "2026-01-12", "2026-01-16")
    result = price(app, POLICY, actual_end_date=date(2026, 1, 14))
    assert (result.amount_cents, result.working_days, result.calendar_days) == (39000, 3, 3)


@pytest.mark.parametrize(
    ("distance_km", "amount_cents"),
    [
        (199.9, 39000),
        (199.96, 39000),
        (199.99999, 39000),
        (200.0, 78000),
        (200.1, 78000),
        (0.0, 39000),
        (5000.0, 78000),
    ],
)
def test_lump_sum_distance_boundary(distance_km: float, amount_cents: int) -> None:
    """R8: under 200 km halves the grant, however little under; exactly 200 km and 200.1 km do not."""
    assert lump_sum(5, distance_km, "HR", LUMP).amount_cents == amount_cents


def _km_north(origin: dict[str, float], km: float, *, at_least: bool = False) -> dict[str, float]:
    """The point `km` north of `origin` on its meridian, where the haversine distance is R x the latitude
    difference in radians (R: the module's Earth radius). With `at_least`, the latitude is moved up by
    single floating-point steps until the module's figure is not below `km`: exactly 200 km, as floats allow."""
    lat = origin["latitude"] + math.degrees(km / EARTH_RADIUS_KM)
    for _ in range(64):
        if not at_least or great_circle_km(origin["latitude"], origin["longitude"], lat, origin["longitude"]) >= km:
            return {"latitude": lat, "longitude": origin["longitude"]}
        lat = math.nextafter(lat, math.inf)
    raise AssertionError(f"no latitude within 64 float steps puts the point {km} km away")


ORIGIN = {"latitude": 45.0, "longitude": 16.0}


@pytest.mark.parametrize(
    ("km", "at_least", "amount_cents", "recorded_km", "halved_because"),
    [
        # Rounded to 200.0 before the comparison, this used to be paid in full.
        (199.96, False, 39000, 200.0, ("distance of 199.96 km is under 200 km",)),
        (199.94, False, 39000, 199.9, ("distance of 199.9 km is under 200 km",)),
        (200.0, True, 78000, 200.0, ()),  # "less than 200 km apart" halves: exactly 200 km does not
        (200.04, False, 78000, 200.0, ()),
    ],
)
def test_the_200_km_rule_compares_the_exact_distance(
    km: float, at_least: bool, amount_cents: int, recorded_km: float, halved_because: tuple[str, ...]
) -> None:
    """R8 at the boundary, on coordinates built to land there: 199.96 km is halved, 200 km is paid in full; the
    result records 0.1 km and the reason shows the figure finely enough not to contradict itself."""
    host = _km_north(ORIGIN, km, at_least=at_least)
    exact = great_circle_km(ORIGIN["latitude"], ORIGIN["longitude"], host["latitude"], host["longitude"])
    assert exact == pytest.approx(km, abs=1e-9)
    result = price(_app_to("HR", host, "2026-01-12", "2026-01-16", visitor_coords=ORIGIN), POLICY)
    assert (result.amount_cents, result.halved_because) == (amount_cents, halved_because)
    assert result.distance_km == recorded_km


def test_screening_records_the_distance_to_a_tenth_of_a_km() -> None:
    """Screening compares no distance; it records the great-circle figure at 0.1 km for people."""
    host = _km_north(ORIGIN, 199.96)
    app = _app_to("HR", host, "2026-01-12", "2026-01-16", visitor_coords=ORIGIN)
    assert screen(app, POLICY).distance_km == 200.0


def test_unit_cost_bands_compare_the_exact_distance() -> None:
    """Erasmus+ bands: 99.96 km is still in the 10-99 km band (23 EUR), shown as 99.96 km, not 100.0."""
    host = _km_north(ORIGIN, 99.96)
    result = price(_app_to("HR", host, "2026-01-12", "2026-01-16", visitor_coords=ORIGIN), ERASMUS)
    assert "travel 10-99 km band (standard, 99.96 km): 23.00 EUR" in result.breakdown
    assert result.distance_km == 100.0


@pytest.mark.parametrize(("days", "amount_cents"), [(3, 39000), (4, 39000), (5, 78000), (21, 78000)])
def test_lump_sum_working_day_boundary(days: int, amount_cents: int) -> None:
    """R8: under 5 working days halves the grant (CLAMTEX: 3 days, 390 EUR); 5 days pay the full 780 EUR."""
    assert lump_sum(days, 500.0, "HR", LUMP).amount_cents == amount_cents


def test_both_halving_triggers_halve_once() -> None:
    """A short stay between close organisations is halved once, not quartered, and names both reasons."""
    quote = lump_sum(3, 150.0, "HR", LUMP)
    assert (quote.amount_cents, quote.full_rate_cents) == (39000, 78000)
    assert quote.halved_because == ("stay of 3 working days is under 5", "distance of 150.0 km is under 200 km")


@pytest.mark.parametrize(
    ("country", "thresholds", "amount_cents"),
    [
        ("DK", {"DK": 110000}, 110000),  # threshold equal to the cap
        ("DK", {"DK": 150000}, 110000),  # threshold above the cap: the cap wins
        ("FR", {"FR": 95000}, 95000),  # group 2
        ("HR", {"FR": 95000}, 78000),  # not listed: the default threshold
    ],
)
def test_lump_sum_is_the_lower_of_threshold_and_cap(
    country: str, thresholds: dict[str, int], amount_cents: int
) -> None:
    """R8: the full rate is the host-country threshold, never above the 1,100 EUR cap."""
    pricing = LUMP.model_copy(update={"host_threshold_cents": thresholds})
    assert lump_sum(5, 500.0, country, pricing).amount_cents == amount_cents


def test_halving_an_odd_amount_rounds_down_to_the_cent() -> None:
    """Halving 780.01 EUR pays 390.00 EUR: the odd cent stays in the budget, never an overpayment."""
    pricing = LUMP.model_copy(update={"default_host_threshold_cents": 78001})
    assert lump_sum(3, 500.0, "HR", pricing).amount_cents == 39000


def test_a_lump_sum_explains_itself() -> None:
    """The breakdown names the threshold (and whether it is the default), the cap and the halving."""
    assert lump_sum(3, 150.0, "HR", LUMP).breakdown == (
        "host-country threshold HR, the default for countries not listed: 780.00 EUR",
        "cap: 1,100.00 EUR",
        "full rate, the lower of the two: 780.00 EUR",
        "halved once (stay of 3 working days is under 5; distance of 150.0 km is under 200 km): 390.00 EUR",
        "lump sum: 390.00 EUR",
    )


_lump_sum_pricing = st.builds(
    LumpSumPricing,
    kind=st.just("lump_sum"),
    lump_sum_cap_cents=st.integers(1, 10_000_000),
    halving_below_working_days=st.integers(1, 30),
    halving_below_distance_km=st.floats(0.1, 5000, allow_nan=False),
    default_host_threshold_cents=st.integers(1, 10_000_000),
    host_threshold_cents=st.dictionaries(st.sampled_from(["DK", "FR", "HR", "XK"]), st.integers(1, 10_000_000)),
)


@given(
    days=st.integers(-5, 400),
    distance_km=st.floats(0, 25_000, allow_nan=False),
    country=st.sampled_from(["DK", "FR", "HR", "XK", "UA", "CH"]),
    pricing=st.one_of(st.just(LUMP), _lump_sum_pricing),
)
def test_no_lump_sum_exceeds_the_cap_or_the_threshold(
    days: int, distance_km: float, country: str, pricing: LumpSumPricing
) -> None:
    """Property: for any days, distance and country, 0 <= lump sum <= min(cap, host threshold), halved at most once."""
    quote = lump_sum(days, distance_km, country, pricing)
    assert 0 <= quote.amount_cents <= pricing.lump_sum_cap_cents
    assert quote.amount_cents <= pricing.threshold_for(country)
    assert quote.amount_cents in {quote.full_rate_cents, quote.full_rate_cents // 2}


# Erasmus+ unit costs, computed by hand from DOMAIN.md: travel per band, then days 1-14 and 15-60 per group.
@pytest.mark.parametrize(
    ("distance_km", "days", "country", "green", "amount_cents", "band_line"),
    [
        # 23 + 14 x 160 (DE, group 2) = 2,263
        (99.9, 14, "DE", False, 226300, "travel 10-99 km band (standard, 99.9 km): 23.00 EUR"),
        # 180 + 14 x 160 = 2,420: 100 km is the next band
        (100.0, 14, "DE", False, 242000, "travel 100-499 km band (standard, 100.0 km): 180.00 EUR"),
        # 180 + 14 x 160 + 1 x 112 = 2,532: day 15 is at the lower rate
        (100.0, 15, "DE", False, 253200, "travel 100-499 km band (standard, 100.0 km): 180.00 EUR"),
        # green 320 + 14 x 140 + 1 x 98 (PL, group 3) = 2,378
        (500.0, 15, "PL", True, 237800, "travel 500-1999 km band (green, 500.0 km): 320.00 EUR"),
        # 4,000 km has no green rate: 820 + 5 x 180 (SE, group 1) = 1,720
        (
            4000.0,
            5,
            "SE",
            True,
            172000,
            "travel 4000-7999 km band (green, no green rate in this band so standard, 4000.0 km): 820.00 EUR",
        ),
        # under 10 km no travel grant: 0 + 1 x 160 = 160
        (9.9, 1, "FR", False, 16000, "travel: 9.9 km is under the first band (10 km): 0.00 EUR"),
        # 1,500 + 14 x 180 + 46 x 126 (NO, group 1) = 9,816; days 61-62 are beyond the table
        (8000.0, 62, "NO", False, 981600, "travel 8000+ km band (standard, 8000.0 km): 1,500.00 EUR"),
    ],
)
def test_unit_cost_figures_by_hand(
    distance_km: float, days: int, country: str, green: bool, amount_cents: int, band_line: str
) -> None:
    """Erasmus+ unit costs: band edges (99.9/100 km), tier edges (14/15 days), green rates and unpaid days."""
    quote = unit_cost(days, distance_km, country, UNIT, green_travel=green)
    assert quote.amount_cents == amount_cents
    assert quote.full_rate_cents == amount_cents
    assert quote.halved_because == ()
    assert band_line in quote.breakdown
    assert quote.breakdown[-1] == f"unit costs: {format_eur(amount_cents)}"


def test_unit_cost_subsistence_lines_show_each_tier() -> None:
    """The breakdown shows the days and daily rate of each tier and refuses to pay days beyond the table."""
    breakdown = unit_cost(62, 8000.0, "NO", UNIT).breakdown
    assert "subsistence NO (group_1), days 1-14: 14 x 180.00 EUR = 2,520.00 EUR" in breakdown
    assert "subsistence NO (group_1), days 15-60: 46 x 126.00 EUR = 5,796.00 EUR" in breakdown
    assert "days 61-62 are beyond the rate table (day 60): not paid" in breakdown


@pytest.mark.parametrize(("cap_cents", "amount_cents"), [(200000, 200000), (253200, 253200), (300000, 253200)])
def test_unit_cost_respects_the_cap_when_the_policy_sets_one(cap_cents: int, amount_cents: int) -> None:
    """A unit-cost total of 2,532 EUR is paid in full under a higher cap and cut to the cap under a lower one."""
    pricing = UNIT.model_copy(update={"cap_cents": cap_cents})
    quote = unit_cost(15, 100.0, "DE", pricing)
    assert quote.amount_cents == amount_cents


@given(
    days=st.integers(-5, 400),
    distance_km=st.floats(0, 25_000, allow_nan=False),
    country=st.sampled_from(["DE", "NO", "PL", "XK"]),
    cap_cents=st.integers(1, 2_000_000),
    green=st.booleans(),
)
def test_no_unit_cost_exceeds_its_cap(days: int, distance_km: float, country: str, cap_cents: int, green: bool) -> None:
    """Property: a unit-cost price is never negative and never above the policy's cap."""
    quote = unit_cost(days, distance_km, country, UNIT.model_copy(update={"cap_cents": cap_cents}), green_travel=green)
    assert 0 <= quote.amount_cents <= cap_cents


def test_price_dispatches_on_the_policy_kind() -> None:
    """The same Krakow-Lyon week is a 950 EUR lump sum under 2022.1 and 275 + 5 x 160 = 1,075 EUR under Erasmus+."""
    app = application(start_date="2026-01-12", end_date="2026-01-16")
    lump = price(app, POLICY)
    unit = price(app, ERASMUS)
    assert (lump.amount_cents, lump.policy_version) == (95000, "2022.1")
    assert (unit.amount_cents, unit.policy_version, unit.calendar_days) == (107500, "erasmus-2021.1", 5)
    assert unit.distance_km == lump.distance_km == 1220.6
    assert unit.breakdown[0] == "policy erasmus-2021.1, unit_cost"
    assert "travel 500-1999 km band (standard, 1220.6 km): 275.00 EUR" in unit.breakdown


def test_unit_costs_count_calendar_days_not_working_days() -> None:
    """A Friday-to-Monday stay is 4 calendar days of subsistence under unit costs, 2 working days for R8."""
    app = application(start_date="2026-01-16", end_date="2026-01-19")
    result = price(app, ERASMUS)
    assert (result.calendar_days, result.working_days) == (4, 2)
    assert result.amount_cents == 27500 + 4 * 16000


def test_green_travel_is_priced_and_digested() -> None:
    """Green travel takes the green band amount and changes the input digest; standard keeps the old digest."""
    app = application(start_date="2026-01-12", end_date="2026-01-16")
    standard, green = price(app, ERASMUS), price(app, ERASMUS, green_travel=True)
    assert green.amount_cents - standard.amount_cents == 32000 - 27500
    assert green.input_digest != standard.input_digest
    assert price(app, POLICY).input_digest == standard.input_digest


@pytest.mark.parametrize(
    ("amount_cents", "text"), [(0, "0.00 EUR"), (5, "0.05 EUR"), (110000, "1,100.00 EUR"), (-117000, "-1,170.00 EUR")]
)
def test_format_eur(amount_cents: int, text: str) -> None:
    """Money is shown from integer cents with thousands separators, never through floats."""
    assert format_eur(amount_cents) == text
