"""Text and dates that cannot poison what comes after (issue 11): every text field of the contract.

A NUL character passes JSON and pydantic but not Postgres, which refuses it; a projection holding one
retried for hours and left the read model stale. So text is checked where it enters:
- no control characters: C0 (U+0000-U+001F), DEL and C1 (U+0080-U+009F); free text keeps tab, line
  feed and carriage return;
- surrounding whitespace is trimmed, then the length is checked; required text holds more than
  whitespace;
- every text has a maximum length.
The JSON Schema says the same with one `pattern` (no look-arounds, so JSON Schema validators and the
engine read it alike); the engine words the refusal for people.

Dates have a plausible range (PLAUSIBLE_DATES, data in schemas/contract-limits.toml): a
year 1 or 9999 is a typing slip, refused at the edge instead of failing a workflow later.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

_CONTROLS = "\x00-\x1f\x7f\x80-\x9f"
_FREE_TEXT_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f"  # tab, LF and CR are allowed


def _pattern(controls: str, required: bool) -> str:
    allowed = f"[^{controls}]*"
    if not required:
        return f"^{allowed}$"
    # At least one character that is neither a control nor whitespace, with only allowed ones around it.
    return f"^{allowed}[^{_CONTROLS}\\s]{allowed}$"


def _checker(controls: str, what: str) -> Any:
    forbidden = frozenset(chr(c) for c in range(0x20)) | {chr(0x7F)} | {chr(c) for c in range(0x80, 0xA0)}
    if controls == _FREE_TEXT_CONTROLS:
        forbidden -= {"\t", "\n", "\r"}

    def check(value: str) -> str:
        for position, character in enumerate(value):
            if character in forbidden:
                raise ValueError(
                    f"must not contain control characters ({what}): U+{ord(character):04X} at position {position}"
                )
        return value

    return check


# One line (names, ids, references) or free text (tab and line breaks allowed); required or optional.
_ONE_LINE = AfterValidator(_checker(_CONTROLS, "one line of text"))
_FREE_TEXT = AfterValidator(_checker(_FREE_TEXT_CONTROLS, "tab and line breaks are allowed"))
ONE_LINE_PATTERN = _pattern(_CONTROLS, required=True)  # one line, more than whitespace: the JSON Schema's rule
_ONE_LINE_REQUIRED = Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})
_FREE_TEXT_REQUIRED = Field(json_schema_extra={"pattern": _pattern(_FREE_TEXT_CONTROLS, required=True)})
_FREE_TEXT_OPTIONAL = Field(json_schema_extra={"pattern": _pattern(_FREE_TEXT_CONTROLS, required=False)})


def _bounds(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length, strip_whitespace=True)


LIMITS_FILE = Path(__file__).parent / "contract-limits.toml"


def _load_plausible_dates(path: Path = LIMITS_FILE) -> tuple[date, date]:
    data = tomllib.loads(path.read_text())
    earliest, latest = data["earliest"], data["latest"]
    if not (isinstance(earliest, date) and isinstance(latest, date) and earliest < latest):
        raise ValueError(f"{path}: earliest and latest must be dates, earliest first")
    return earliest, latest


PLAUSIBLE_DATES = _load_plausible_dates()


def _plausible_date(value: date) -> date:
    earliest, latest = PLAUSIBLE_DATES
    if not earliest <= value <= latest:
        raise ValueError(
            f"must fall within {earliest.isoformat()}..{latest.isoformat()} (the programme's plausible dates)"
        )
    return value


def _plausible_instant(value: datetime) -> datetime:
    _plausible_date(value.date())
    return value


_RANGE = f"between {PLAUSIBLE_DATES[0].isoformat()} and {PLAUSIBLE_DATES[1].isoformat()}"
PlausibleDate = Annotated[date, AfterValidator(_plausible_date), Field(description=f"a date {_RANGE}")]
PlausibleInstant = Annotated[
    AwareDatetime, AfterValidator(_plausible_instant), Field(description=f"an instant {_RANGE}, with its offset")
]

# The contract's text fields, by kind (the lengths are limits on everything, TIGER_STYLE).
Line = Annotated[str, _bounds(128), _ONE_LINE, _ONE_LINE_REQUIRED]  # actor ids, references
Name = Annotated[str, _bounds(200), _ONE_LINE, _ONE_LINE_REQUIRED]  # organisations and people
FileName = Annotated[str, _bounds(255), _ONE_LINE, _ONE_LINE_REQUIRED]
Criterion = Annotated[str, _bounds(64), _ONE_LINE, _ONE_LINE_REQUIRED]  # a rubric criterion's name
PolicyVersion = Annotated[str, _bounds(32), _ONE_LINE, _ONE_LINE_REQUIRED]
OptionalText = Annotated[str, _bounds(2000, min_length=0), _FREE_TEXT, _FREE_TEXT_OPTIONAL]
RequiredText = Annotated[str, _bounds(2000), _FREE_TEXT, _FREE_TEXT_REQUIRED]
Justification = Annotated[str, _bounds(2000, min_length=10), _FREE_TEXT, _FREE_TEXT_REQUIRED]
