"""Great-circle distance between two organisations (DOMAIN.md, "Distance")."""

from __future__ import annotations

import math

_EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km, rounded to 0.1 km (the precision the 200 km rule is read at)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return round(2 * _EARTH_RADIUS_KM * math.asin(math.sqrt(a)), 1)
