"""Euros for people: every human output of `cx` shows amounts as `1,100.00 EUR`; JSON keeps `*_cents`.

Integer arithmetic only: no float ever touches money. The style is the one rules/pricing.py uses
in its reasons, so an amount reads the same in `cx status`, `cx budget` and `cx explain`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_PLAIN_EUROS = re.compile(r"\d+(\.\d{1,2})?")


class InvalidAmount(ValueError):
    """An amount of euros typed by a person that is not a positive number of whole cents within the limit."""


def format_eur(amount_cents: int) -> str:
    """12345678 -> '123,456.78 EUR'."""
    sign = "-" if amount_cents < 0 else ""
    euros, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{euros:,}.{cents:02d} EUR"


def format_optional_eur(amount_cents: int | None, missing: str = "not priced yet") -> str:
    """An amount that may not exist yet (a grant before pricing) says so instead of printing None."""
    return missing if amount_cents is None else format_eur(amount_cents)


def parse_eur(text: str, *, field: str, maximum_cents: int) -> int:
    """Euros as typed ("25000", "1250.50") -> cents; anything else is refused naming `field` and the rule.

    Only plain digits with at most two decimals pass: no sign, exponent, separator, `NaN` or `Infinity`,
    so what was typed is exactly what is booked.
    """
    shown = text if len(text) <= 40 else text[:40] + "..."
    if not _PLAIN_EUROS.fullmatch(text):
        raise InvalidAmount(f"{field} {shown!r}: {_what_is_wrong(text)}")
    whole, _, fraction = text.partition(".")
    cents = int(whole) * 100 + int(fraction.ljust(2, "0") or "0")
    if cents <= 0:
        raise InvalidAmount(f"{field} {shown!r}: must be positive")
    if cents > maximum_cents:
        raise InvalidAmount(f"{field} {shown!r}: at most {format_eur(maximum_cents)}")
    return cents


def _what_is_wrong(text: str) -> str:
    """The rule that a non-plain amount breaks, most specific first."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return "not a number of euros (e.g. 25000 or 1250.50)"
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int):
        return "must be a finite number of euros"
    if value <= 0:
        return "must be positive"
    if "e" in text.lower():
        return "write plain digits, without an exponent"
    if exponent < -2:
        return "at most two decimals (whole cents)"
    return "write plain digits with at most two decimals, e.g. 1250.50"
