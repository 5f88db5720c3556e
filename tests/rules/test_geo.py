"""Distance: the rules compare the exact great-circle figure; 0.1 km is for people, and never misstates a comparison."""

from __future__ import annotations

import math

import pytest

from rules.geo import EARTH_RADIUS_KM, display_km, format_km, great_circle_km


def test_great_circle_km_is_not_rounded() -> None:
    """A point 199.96 km north along a meridian is 199.96 km away, not 200.0 (the old rounding paid it in full)."""
    lat = 48.0 + math.degrees(199.96 / EARTH_RADIUS_KM)
    assert great_circle_km(48.0, 16.0, lat, 16.0) == pytest.approx(199.96, abs=1e-9)
    assert display_km(great_circle_km(48.0, 16.0, lat, 16.0)) == 200.0


@pytest.mark.parametrize(
    ("km", "compared_with", "shown"),
    [
        (199.96, (200.0,), "199.96 km"),  # 0.1 km would say 200.0, "under 200 km" would contradict itself
        (199.9996, (200.0,), "199.9996 km"),
        (199.94, (200.0,), "199.9 km"),
        (200.0, (200.0,), "200.0 km"),
        (200.04, (200.0,), "200.0 km"),  # 200.0 is not under 200: 0.1 km is enough
        (99.96, (10, 100), "99.96 km"),  # a band edge
        (1220.6333, (500, 2000), "1220.6 km"),
        (150.0, (), "150.0 km"),
        (199.99999999, (200.0,), "199.99999999 km"),  # finer than 6 decimals: the float as it is
    ],
)
def test_format_km_keeps_the_side_of_every_threshold(km: float, compared_with: tuple[float, ...], shown: str) -> None:
    """0.1 km unless that puts the figure on the other side of a threshold it was compared with."""
    assert format_km(km, *compared_with) == shown
