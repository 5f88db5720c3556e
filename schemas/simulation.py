"""The programme simulation's contract (issue 17): the behaviour model as data, and one applicant's plan.

`Behaviour` is read from a TOML file (schemas/behaviour/programme-2022.toml is the default) and validated
strictly: an unknown key, a share outside 0..1, a range whose low end is above its high end or a wrong type
is refused, naming the key. `ApplicantPlan` is what the simulation's driver samples for one application
(seeded, docs/adr/0027-programme-simulation.md) and hands to that application's actor workflow: the
application itself, when it arrives, and what each person around it will do and when.
"""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.converter import describe_errors
from schemas.exchange import ApplicationInput
from schemas.organisations import CountryCode

BEHAVIOUR_DIR = Path(__file__).parent / "behaviour"
DEFAULT_BEHAVIOUR = BEHAVIOUR_DIR / "programme-2022.toml"
MAX_APPLICATIONS = 20_000  # a limit on everything: a run of more is a typo, not a programme
MAX_MONTHS = 60

Share = Annotated[float, Field(ge=0.0, le=1.0)]
Days = Annotated[int, Field(ge=0, le=400)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DayRange(_Strict):
    """Whole days, drawn uniformly from `low` to `high` inclusive."""

    low: Days
    high: Days

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not be above high ({self.high})")
        return self


class Programme(_Strict):
    start: date = Field(description="the programme's first day (its calendar; the server's clock is shifted to it)")
    months: int = Field(ge=1, le=MAX_MONTHS, description="months in which applications arrive")
    applications: int = Field(ge=1, le=MAX_APPLICATIONS)
    arrival_weights: tuple[Annotated[float, Field(ge=0.0)], ...] = Field(
        description="relative arrivals per month, one per month of `months`"
    )

    @model_validator(mode="after")
    def _one_weight_per_month(self) -> Programme:
        if len(self.arrival_weights) != self.months or sum(self.arrival_weights) <= 0:
            raise ValueError(f"arrival_weights: needs {self.months} weights (one per month), not all zero")
        return self


class PartnershipModel(_Strict):
    partnership_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")
    name: str = Field(min_length=1, max_length=120)
    budget_cents: int = Field(gt=0)
    weight: float = Field(gt=0.0, description="relative share of the applications")


class City(_Strict):
    country: CountryCode
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class Applicants(_Strict):
    ineligible_share: Share = Field(description="applications failing a rule (visitor and host in one country)")
    short_stay_share: Share = Field(description="stays of 3 or 4 working days (the lump sum is halved, R8)")
    lead_days: DayRange = Field(description="from the application to the first day of the stay")
    withdrawal_share: Share
    withdrawal_days_before_start: DayRange
    no_show_share: Share
    shortened_stay_share: Share = Field(description="the host confirms an earlier last day")


class Reviewers(_Strict):
    on_time_days: DayRange
    late_share: Share
    late_days: DayRange = Field(description="after the review deadline's 10 working days")
    absent_share: Share = Field(description="never reviews: the engine escalates and reassigns")
    reject_share: Share = Field(description="recommends rejection (a veto under policy 2022.1)")


class Agreement(_Strict):
    sign_days: DayRange
    lapse_share: Share = Field(description="nobody signs: the agreement lapses at its deadline")


class Reporting(_Strict):
    on_time_days: DayRange = Field(description="after the stay ends")
    late_share: Share
    late_days: DayRange = Field(description="after the stay ends; past `report_days` the exchange is forfeited")
    missing_share: Share
    validation_days: DayRange


class Finance(_Strict):
    on_time_days: DayRange
    delayed_share: Share
    delayed_days: DayRange


class Behaviour(_Strict):
    """Everything the simulation samples from, as data; the policy comes separately (its own file)."""

    programme: Programme
    partnerships: tuple[PartnershipModel, ...] = Field(min_length=1, max_length=100)
    cities: tuple[City, ...] = Field(min_length=2, max_length=200)
    applicants: Applicants
    reviewers: Reviewers
    agreement: Agreement
    reporting: Reporting
    finance: Finance

    @model_validator(mode="after")
    def _distinct_partnerships(self) -> Behaviour:
        ids = [p.partnership_id for p in self.partnerships]
        if len(set(ids)) != len(ids):
            raise ValueError("partnerships: each partnership_id must appear once")
        if len({c.country for c in self.cities}) < 2:
            raise ValueError("cities: at least two countries (a visit crosses a border, R5)")
        return self

    @property
    def budget_cents(self) -> int:
        return sum(p.budget_cents for p in self.partnerships)


class BehaviourFileError(ValueError):
    """A behaviour file that cannot be used; the message names the file, every key and the rule."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        listed = "; ".join(f"{key}: {rule}" for key, rule in problems)
        super().__init__(f"{path}: {listed}")


def load_behaviour(path: Path = DEFAULT_BEHAVIOUR, overrides: dict[str, Any] | None = None) -> Behaviour:
    """The behaviour model in `path` (TOML), with `overrides` per section (e.g. the CLI's --applications)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise BehaviourFileError(path, [("(file)", f"cannot be read: {error}")]) from error
    except tomllib.TOMLDecodeError as error:
        raise BehaviourFileError(path, [("(syntax)", f"not valid TOML: {error}")]) from error
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    try:
        # Through JSON in strict mode, as policy files are read: TOML's own types must match (a quoted "0.1" is
        # not a share), while dates and arrays are read from their JSON spelling.
        return Behaviour.model_validate_json(json.dumps(data, default=_toml_scalar))
    except ValidationError as error:
        raise BehaviourFileError(path, describe_errors(error)) from None


def _toml_scalar(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"not a TOML value: {type(value).__name__}")


class ReviewerPlan(_Strict):
    """What the k-th reviewer assigned to the application does: review `after_days` after assignment, or never."""

    after_days: int | None = Field(ge=0, description="None: absent")
    recommendation: str = Field(pattern=r"^(approve|reject)$")


class ApplicantPlan(_Strict):
    """One application and its people's behaviour, sampled from its own seeded random stream.

    People act at their decision's hour (UTC) on the day their delay says, plus `slot_seconds` (in a partnership
    that could run short, the application's rank in it; else 0): two of its applications never act at the same
    instant, so the order in which they reach its budget is the order of their instants, not of thread
    scheduling (ADR 0027)."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # not strict: it travels as JSON through Temporal

    index: int = Field(ge=0)
    slot_seconds: int = Field(ge=0, lt=3600)
    application: ApplicationInput = Field(description="submitted_at is the arrival instant")
    criteria: tuple[str, ...] = Field(min_length=1, description="the policy's review rubric")
    reviewers: tuple[ReviewerPlan, ...] = Field(min_length=1, max_length=8)
    sign_after_days: int | None = Field(ge=0, description="None: nobody signs, the agreement lapses")
    withdraw_on: date | None = None
    no_show: bool = False
    actual_end_date: date | None = Field(default=None, description="a shortened stay's last day")
    report_after_days: int | None = Field(ge=0, description="after the stay ends; None: no report")
    validate_after_days: int = Field(ge=0)
    pay_after_days: int = Field(ge=0)
    horizon: datetime = Field(description="the actor gives up after this instant (a limit on every wait)")


class ActorOutcome(_Strict):
    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: str
    stage: str
    actions: int = Field(ge=0)


class ClockInput(_Strict):
    """The programme's clock: a workflow that sleeps until `until`; awaiting it lets the server skip time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    until: datetime
