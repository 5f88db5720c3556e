"""The programme policy as versioned data: every number the rules use, loaded and validated by version.

A policy is one TOML file under schemas/policies/. The ClusterXchange versions are named
`clusterxchange-<version>.toml`; `load_policy(version)` loads one, `policy_in_force(on)` picks the one
with the latest `effective_from` not after a date. Other programmes' tables (Erasmus+ unit costs) use
the same schema and are loaded by path with `load_policy_file`. Files are validated strictly (no
string-to-number or number-to-bool coercion) and refused with a `PolicyFileError` naming the file, the
field path and the rule broken. See docs/adr/0005-policy-as-data.md.

`Policy` objects also travel through Temporal as activity inputs and results (JSON). A policy recorded
in a running workflow's history must keep deserialising after this module changes, so every field added
after the first recorded histories has a default that reproduces the old behaviour (pricing without a
`kind` is a lump sum), and the loader still requires policy files to state those fields.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.organisations import CountryCode, OrganisationType

POLICIES_DIR = Path(__file__).parent / "policies"
DEFAULT_POLICY_VERSION = "2022.1"
PROGRAMME_FILE_PREFIX = "clusterxchange-"
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# The fewest weekdays any calendar month can hold (a 28-day February has exactly 20): a minimum stay of
# more working days than 20 per allowed month could never be met.
_FEWEST_WEEKDAYS_PER_MONTH = 20


def _rule_broken(field: str, rule: str) -> PydanticCustomError:
    """A validation error for a rule spanning fields, carrying the field it is about (see `_problems`)."""
    return PydanticCustomError("policy_rule", "{field}: {rule}", {"field": field, "rule": rule})


def _known_country(value: str, info: ValidationInfo) -> str:
    # Only the file loader passes the list of known codes: deserialising a policy from a workflow history
    # must not depend on the calendar data installed today.
    known = (info.context or {}).get("known_countries")
    if known is not None and value not in known:
        raise PydanticCustomError(
            "unknown_country",
            "unknown country code: not an ISO 3166-1 alpha-2 code with a public-holiday calendar",
        )
    return value


PolicyCountry = Annotated[CountryCode, AfterValidator(_known_country)]
Cents = Annotated[int, Field(ge=0)]
PositiveCents = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EligibilityPolicy(_Strict):
    """Who may take part and for how long (R1-R6, R13 lead time) and how R7 counts a cancellation."""

    visitor_types: frozenset[OrganisationType] = Field(min_length=1)
    host_types: frozenset[OrganisationType] = Field(min_length=1)
    participating_countries: frozenset[PolicyCountry] = Field(min_length=1)
    min_working_days: int = Field(ge=1)
    max_stay_months: int = Field(ge=1)
    application_lead_days: int = Field(ge=0)
    # The fields below were added after the first histories were recorded; their defaults are the rules the
    # pilot always had, and policy files must state them (see _STATED_IN_FILES).
    profiled_member_visitor_types: frozenset[OrganisationType] = Field(
        default=frozenset({OrganisationType.SME}),
        description="R3: visitor types that must be a member of a cluster profiled on the ECCP",
    )
    profiled_member_or_approved_host_types: frozenset[OrganisationType] = Field(
        default=frozenset({OrganisationType.SME}),
        description="R3: host types that, when not a member of a profiled cluster, need the agency's prior approval",
    )
    # Issue 10: empty by default, the rule recorded policies were applied with (they never asked it); the
    # shipped files state it, as DOMAIN.md's R1 does for scaling-up support organisations.
    cluster_member_visitor_types: frozenset[OrganisationType] = Field(
        default=frozenset(),
        description="R1: visitor types that may visit only as a cluster member (scaling-up support organisations)",
    )
    cancelled_uses_visit: bool = Field(
        default=False, description="R7: whether an exchange cancelled by an officer uses up the visitor's one visit"
    )
    country_list_name: str = Field(
        default="the COSME participating countries",
        min_length=1,
        description="how R4 names the country list to applicants",
    )

    @model_validator(mode="after")
    def _consistent(self) -> EligibilityPolicy:
        if self.min_working_days > _FEWEST_WEEKDAYS_PER_MONTH * self.max_stay_months:
            raise _rule_broken(
                "min_working_days",
                f"{self.min_working_days} working days cannot fit in a stay of at most {self.max_stay_months} "
                f"month(s) (a month can have as few as {_FEWEST_WEEKDAYS_PER_MONTH} weekdays)",
            )
        cannot_visit = sorted(self.profiled_member_visitor_types - self.visitor_types)
        if cannot_visit:
            raise _rule_broken("profiled_member_visitor_types", f"{cannot_visit} are not visitor_types")
        not_visitors = sorted(self.cluster_member_visitor_types - self.visitor_types)
        if not_visitors:
            raise _rule_broken("cluster_member_visitor_types", f"{not_visitors} are not visitor_types")
        cannot_host = sorted(self.profiled_member_or_approved_host_types - self.host_types)
        if cannot_host:
            raise _rule_broken("profiled_member_or_approved_host_types", f"{cannot_host} are not host_types")
        return self


class LumpSumPricing(_Strict):
    """R8: one lump sum, the lower of the host-country threshold and the cap, halved once on either trigger."""

    # Policies recorded before pricing had kinds carry no `kind`: they are lump sums (see _pricing_kind).
    kind: Literal["lump_sum"] = "lump_sum"
    lump_sum_cap_cents: PositiveCents
    halving_below_working_days: int = Field(ge=1)
    halving_below_distance_km: float = Field(gt=0)
    default_host_threshold_cents: PositiveCents
    host_threshold_cents: dict[PolicyCountry, PositiveCents]

    def threshold_for(self, country: str) -> int:
        return self.host_threshold_cents.get(country, self.default_host_threshold_cents)

    def priced_countries(self) -> frozenset[str]:
        return frozenset(self.host_threshold_cents)


class TravelBand(_Strict):
    """A distance band: from `from_km` (inclusive) to just under the next band's `from_km`."""

    from_km: int = Field(ge=0)
    standard_cents: Cents
    green_cents: Cents | None = Field(default=None, description="sustainable travel; absent: the standard amount")


class SubsistenceTier(_Strict):
    """Days `first_day` to `last_day` of the stay (inclusive, counted from 1) share one daily rate."""

    first_day: int = Field(ge=1)
    last_day: int = Field(ge=1)


class CountryGroup(_Strict):
    countries: frozenset[PolicyCountry]
    daily_cents: tuple[Cents, ...] = Field(min_length=1, description="one daily rate per subsistence tier")


class UnitCostPricing(_Strict):
    """Erasmus+-style unit costs: a travel amount by distance band plus a daily rate by host-country group.

    Days are calendar days of the stay (start to end inclusive, travel days excluded as the application's
    dates already are); days beyond the last tier are not paid.
    """

    kind: Literal["unit_cost"]
    cap_cents: PositiveCents | None = Field(default=None, description="an upper bound on the total, if any")
    travel_bands: tuple[TravelBand, ...] = Field(min_length=1)
    subsistence_tiers: tuple[SubsistenceTier, ...] = Field(min_length=1)
    country_groups: dict[str, CountryGroup] = Field(min_length=1)
    default_country_group: str | None = Field(default=None, description="the group of a country no group lists")

    @model_validator(mode="after")
    def _consistent(self) -> UnitCostPricing:
        starts = [band.from_km for band in self.travel_bands]
        if any(later <= earlier for earlier, later in pairwise(starts)):
            raise _rule_broken("travel_bands", f"from_km must strictly increase from band to band (got {starts})")
        expected_first = 1
        for index, tier in enumerate(self.subsistence_tiers):
            if tier.first_day != expected_first or tier.last_day < tier.first_day:
                raise _rule_broken(
                    f"subsistence_tiers[{index}]",
                    f"tiers must cover days 1, 2, ... without gaps or overlaps: this one must start on day "
                    f"{expected_first} and end on or after it (got days {tier.first_day}-{tier.last_day})",
                )
            expected_first = tier.last_day + 1
        seen: dict[str, str] = {}
        for name, group in self.country_groups.items():
            if len(group.daily_cents) != len(self.subsistence_tiers):
                raise _rule_broken(
                    f"country_groups.{name}.daily_cents",
                    f"needs one daily rate per subsistence tier: {len(self.subsistence_tiers)} "
                    f"(got {len(group.daily_cents)})",
                )
            for country in sorted(group.countries):
                if country in seen:
                    raise _rule_broken(
                        f"country_groups.{name}.countries", f"{country} is already in group {seen[country]}"
                    )
                seen[country] = name
        if self.default_country_group is not None and self.default_country_group not in self.country_groups:
            raise _rule_broken(
                "default_country_group",
                f"{self.default_country_group!r} is not one of the country_groups ({', '.join(self.country_groups)})",
            )
        return self

    def group_for(self, country: str) -> str | None:
        for name, group in self.country_groups.items():
            if country in group.countries:
                return name
        return self.default_country_group

    def priced_countries(self) -> frozenset[str]:
        return frozenset(c for group in self.country_groups.values() for c in group.countries)


PRICING_KINDS = ("lump_sum", "unit_cost")


def _pricing_kind(value: Any) -> str:
    # A pricing section without `kind` is a lump sum: that is how policies were recorded in workflow
    # histories before kinds existed. Policy files must still state it (see _STATED_IN_FILES).
    kind = value.get("kind", "lump_sum") if isinstance(value, dict) else getattr(value, "kind", "lump_sum")
    return str(kind)


PricingPolicy = Annotated[
    Annotated[LumpSumPricing, Tag("lump_sum")] | Annotated[UnitCostPricing, Tag("unit_cost")],
    Discriminator(
        _pricing_kind,
        custom_error_type="policy_rule",
        custom_error_message="kind: must be one of lump_sum, unit_cost",
        custom_error_context={"field": "kind", "rule": "must be one of " + ", ".join(PRICING_KINDS)},
    ),
]


class DeadlinePolicy(_Strict):
    review_working_days: int = Field(ge=1)
    review_escalation_working_days: int = Field(ge=1)
    signature_days: int = Field(ge=1)
    signature_reminder_days_before: tuple[int, ...] = Field(
        default=(7, 2), description="reminders to the missing signatories, days before the signature deadline"
    )
    waitlist_days: int = Field(ge=1)
    report_days: int = Field(ge=1)
    report_reminder_days: tuple[int, ...]
    payment_sla_days: int = Field(ge=1)
    payment_confirmation_max_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _reminders_before_deadline(self) -> DeadlinePolicy:
        late = [d for d in self.report_reminder_days if not 0 < d < self.report_days]
        if late:
            raise _rule_broken(
                "report_reminder_days",
                f"reminders {late} must fall strictly between 0 and report_days ({self.report_days})",
            )
        if self.payment_confirmation_max_days < self.payment_sla_days:
            raise _rule_broken(
                "payment_confirmation_max_days",
                f"must be at least payment_sla_days ({self.payment_sla_days}) "
                f"(got {self.payment_confirmation_max_days})",
            )
        return self


class ReviewPolicy(_Strict):
    """REVIEW (issue 5): who reviews, how many must, what approves, and the clocks around them.

    The defaults are the 2022.1 values; they exist only so that policies recorded in workflow histories
    before this section existed still deserialise. Policy files state the section in full.
    """

    reviewers_per_application: int = Field(default=2, ge=1, le=10)
    quorum: int = Field(default=2, ge=1, le=10, description="k of n: reviews needed before a decision")
    criteria: tuple[str, ...] = Field(default=("relevance", "agenda_quality", "expected_impact"), min_length=1)
    score_min: int = Field(default=1, ge=0)
    score_max: int = Field(default=5, ge=1)
    approval_mean_score: float = Field(default=3.0, gt=0, description="mean of every criterion score to approve")
    reminder_days_before_due: int = Field(default=2, ge=0)
    reassign_grace_working_days: int = Field(default=3, ge=1, description="after the deadline, silent reviewers go")
    max_reassignment_rounds: int = Field(default=2, ge=0)
    amendment_days: int = Field(default=14, ge=1, description="for the applicant to answer a request for changes")
    appeal_days: int = Field(default=30, ge=0, description="an officer may reopen a rejection within this window")

    @model_validator(mode="after")
    def _consistent(self) -> ReviewPolicy:
        if self.quorum > self.reviewers_per_application:
            raise _rule_broken(
                "quorum", f"must not exceed reviewers_per_application ({self.reviewers_per_application})"
            )
        if self.score_min >= self.score_max:
            raise _rule_broken("score_max", f"must be above score_min ({self.score_min})")
        if not self.score_min <= self.approval_mean_score <= self.score_max:
            raise _rule_broken("approval_mean_score", f"must lie within {self.score_min}..{self.score_max}")
        if len(set(self.criteria)) != len(self.criteria):
            raise _rule_broken("criteria", "must not repeat a criterion")
        return self


class Policy(_Strict):
    version: str = Field(min_length=1, max_length=64, pattern=_VERSION_PATTERN.pattern)
    effective_from: date
    description: str = ""
    eligibility: EligibilityPolicy
    pricing: PricingPolicy
    deadlines: DeadlinePolicy
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)

    @model_validator(mode="after")
    def _prices_only_participating_countries(self) -> Policy:
        # A table entry for a country that can never take part is a typo or a stale copy: refuse it.
        participating = self.eligibility.participating_countries
        stray = sorted(self.pricing.priced_countries() - participating)
        if stray:
            where = "host_threshold_cents" if isinstance(self.pricing, LumpSumPricing) else "country_groups"
            raise _rule_broken(f"pricing.{where}", f"{stray} are not participating_countries")
        if isinstance(self.pricing, UnitCostPricing) and self.pricing.default_country_group is None:
            unpriced = sorted(participating - self.pricing.priced_countries())
            if unpriced:
                raise _rule_broken(
                    "pricing.country_groups",
                    f"participating countries {unpriced} have no group and there is no default_country_group",
                )
        return self


class UnknownPolicyVersion(LookupError):
    pass


@dataclass(frozen=True)
class PolicyProblem:
    """One refusal: `field` is the dotted path in the file (pricing.lump_sum_cap_cents), `rule` what it breaks."""

    field: str
    rule: str


class PolicyFileError(ValueError):
    """A policy file refused: every problem found, each with its field path and the rule it breaks."""

    def __init__(self, path: Path, problems: Sequence[PolicyProblem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p.field}: {p.rule}" for p in self.problems)
        super().__init__(f"policy file {path} refused ({len(self.problems)} problem(s)):\n{lines}")


# Fields whose model default exists only so policies recorded in workflow histories before the field
# existed still deserialise. A file states each one, so a version never inherits a rule silently.
_STATED_IN_FILES = (
    ("pricing", "kind"),
    ("eligibility", "profiled_member_visitor_types"),
    ("eligibility", "profiled_member_or_approved_host_types"),
    ("eligibility", "cluster_member_visitor_types"),
    ("eligibility", "cancelled_uses_visit"),
    ("eligibility", "country_list_name"),
    ("deadlines", "signature_reminder_days_before"),
)


@cache
def _known_country_codes() -> frozenset[str]:
    # The codes the working-day calendar knows: a country without one could not be screened (R6).
    # Imported here: only file loading needs the calendar data, and workflow code imports this module.
    import holidays

    return frozenset(code for code in holidays.list_supported_countries() if len(code) == 2)


def load_policy_file(path: Path) -> Policy:
    """The policy in `path`, validated strictly; a `PolicyFileError` lists every problem with its field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(path, [PolicyProblem("(file)", f"cannot be read: {error}")]) from error
    return load_policy_text(text, path)


def load_policy_text(text: str, path: Path) -> Policy:
    """The policy in `text` (a policy file's TOML; `path` names it in refusals), validated like a file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message carries "(at line N, column M)".
        raise PolicyFileError(path, [PolicyProblem("(syntax)", f"not valid TOML: {error}")]) from error
    return load_policy_data(data, path)


def load_policy_data(data: dict[str, Any], path: Path) -> Policy:
    """The policy in `data` (a policy file's document, from TOML or JSON), validated like a file."""
    problems = [
        PolicyProblem(f"{section}.{name}", "required in policy files (a default exists only for recorded histories)")
        for section, name in _STATED_IN_FILES
        if isinstance(data.get(section), dict) and name not in data[section]
    ]
    if "review" not in data:
        problems.append(
            PolicyProblem("review", "required in policy files (a default exists only for recorded histories)")
        )
    expected_version = _version_from_file_name(path)
    if expected_version is not None and data.get("version") != expected_version:
        problems.append(
            PolicyProblem(
                "version", f"must be {expected_version!r}, as the file name says (got {data.get('version')!r})"
            )
        )
    policy: Policy | None = None
    try:
        # Through JSON in strict mode: TOML's own types must match (a quoted "110000" is not a number, 0 is
        # not false), while dates, enums and sets are read from their JSON spelling.
        policy = Policy.model_validate_json(
            json.dumps(data, default=_toml_scalar_as_json),
            strict=True,
            context={"known_countries": _known_country_codes()},
        )
    except ValidationError as error:
        problems.extend(_problems(error))
    if problems or policy is None:
        raise PolicyFileError(path, problems)
    return policy


def _version_from_file_name(path: Path) -> str | None:
    if path.name.startswith(PROGRAMME_FILE_PREFIX) and path.suffix == ".toml":
        return path.stem.removeprefix(PROGRAMME_FILE_PREFIX)
    return None


def _toml_scalar_as_json(value: object) -> str:
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    raise TypeError(f"cannot represent {type(value).__name__} in JSON")


def _problems(error: ValidationError) -> list[PolicyProblem]:
    problems = []
    for item in error.errors(include_url=False):
        parts = list(item["loc"])
        # The tagged union adds the tag to the path (pricing.lump_sum.cap): the file has no such level.
        if len(parts) > 1 and parts[0] == "pricing" and parts[1] in PRICING_KINDS:
            del parts[1]
        if parts and parts[-1] == "[key]":
            parts.pop()
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
        context = item.get("ctx") or {}
        if item["type"] == "policy_rule":
            field = ".".join(p for p in (field, str(context["field"])) if p)
            rule = str(context["rule"])
        elif item["type"] == "missing":
            rule = "required field is missing"
        elif item["type"] == "value_error":
            rule = str(context.get("error", item["msg"]))
        elif item["type"] == "extra_forbidden":
            rule = "unknown field: the policy schema has no such field (a typo, or a field of another kind?)"
        else:
            rule = f"{item['msg']} (got {_shown(item['input'])})"
        problems.append(PolicyProblem(field or "(top level)", rule))
    return problems


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def known_versions(directory: Path = POLICIES_DIR) -> tuple[str, ...]:
    """The ClusterXchange versions shipped in `directory`, from their file names."""
    return tuple(
        sorted(p.stem.removeprefix(PROGRAMME_FILE_PREFIX) for p in directory.glob(f"{PROGRAMME_FILE_PREFIX}*.toml"))
    )


def load_policy(version: str = DEFAULT_POLICY_VERSION) -> Policy:
    """The policy of that version, validated once per process; old versions stay loadable for replays and audits."""
    return _load_shipped(version)


@cache  # keyed by the version string alone, so load_policy() and load_policy("2022.1") share one entry
def _load_shipped(version: str) -> Policy:
    path = POLICIES_DIR / f"{PROGRAMME_FILE_PREFIX}{version}.toml"
    # The version comes from applications: a well-formed name only, never a path out of the directory.
    if not _VERSION_PATTERN.fullmatch(version) or not path.exists():
        raise UnknownPolicyVersion(f"policy_version {version!r}: no such policy (known: {', '.join(known_versions())})")
    return load_policy_file(path)


def policy_in_force(on: date, directory: Path | None = None) -> Policy:
    """The ClusterXchange version with the latest `effective_from` not after `on`.

    Reads the shipped versions (cached) unless `directory` names another catalogue, such as a test's.
    """
    if directory is None:
        policies = [load_policy(version) for version in known_versions()]
    else:
        policies = [load_policy_file(p) for p in sorted(directory.glob(f"{PROGRAMME_FILE_PREFIX}*.toml"))]
    started = [p for p in policies if p.effective_from <= on]
    if not started:
        earliest = min((p.effective_from for p in policies), default=None)
        raise UnknownPolicyVersion(f"no policy is in force on {on} (the earliest takes effect on {earliest})")
    latest = max(p.effective_from for p in started)
    chosen = [p for p in started if p.effective_from == latest]
    if len(chosen) > 1:
        # Two versions starting the same day would make the choice depend on file order: refuse it.
        versions = ", ".join(sorted(p.version for p in chosen))
        raise PolicyFileError(
            directory or POLICIES_DIR,
            [PolicyProblem("effective_from", f"versions {versions} all take effect on {latest}; one must be later")],
        )
    return chosen[0]
