"""Great-circle distance between two organisations (DOMAIN.md, "Distance").

The rules compare the exact figure: the 200 km rule (R8) and the unit-cost distance bands read
`great_circle_km` unrounded, so 199.96 km is under 200 km. Rounding is for people only: the recorded
results carry `display_km` (0.1 km), and sentences use `format_km`, which shows more decimals when 0.1 km
would put the figure on the other side of the threshold it was compared with (issue 10, item 6).
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
_DISPLAY_DECIMALS = 1
_MAX_DECIMALS = 6


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km, unrounded: the figure the rules compare."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def display_km(km: float) -> float:
    """The distance as results record it, to 0.1 km; never compared with a threshold."""
    return round(km, _DISPLAY_DECIMALS)


def format_km(km: float, *compared_with: float) -> str:
    """`km` for a sentence, to 0.1 km unless that would misstate a comparison with one of `compared_with`.

    199.96 km compared with 200 km reads "199.96 km", not "200.0 km", so a line saying it is under 200 km
    does not contradict itself; the decimals grow only as far as that needs.
    """
    for decimals in range(_DISPLAY_DECIMALS, _MAX_DECIMALS + 1):
        shown = round(km, decimals)
        if all((shown < threshold) == (km < threshold) for threshold in compared_with):
            return f"{shown:.{decimals}f} km"
    return f"{km!r} km"
