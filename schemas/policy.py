"""The programme policy as versioned data: every number the rules use, loaded and validated by version."""

from __future__ import annotations

import tomllib
from datetime import date
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.organisations import CountryCode, OrganisationType

POLICIES_DIR = Path(__file__).parent / "policies"
DEFAULT_POLICY_VERSION = "2022.1"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EligibilityPolicy(_Strict):
    visitor_types: frozenset[OrganisationType]
    host_types: frozenset[OrganisationType]
    participating_countries: frozenset[CountryCode]
    min_working_days: int = Field(ge=1)
    max_stay_months: int = Field(ge=1)
    application_lead_days: int = Field(ge=0)


class PricingPolicy(_Strict):
    lump_sum_cap_cents: int = Field(gt=0)
    halving_below_working_days: int = Field(ge=1)
    halving_below_distance_km: float = Field(gt=0)
    default_host_threshold_cents: int = Field(gt=0)
    host_threshold_cents: dict[CountryCode, int]

    def threshold_for(self, country: str) -> int:
        return self.host_threshold_cents.get(country, self.default_host_threshold_cents)


class DeadlinePolicy(_Strict):
    review_working_days: int = Field(ge=1)
    review_escalation_working_days: int = Field(ge=1)
    signature_days: int = Field(ge=1)
    waitlist_days: int = Field(ge=1)
    report_days: int = Field(ge=1)
    report_reminder_days: tuple[int, ...]
    payment_sla_days: int = Field(ge=1)
    payment_confirmation_max_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _reminders_before_deadline(self) -> DeadlinePolicy:
        late = [d for d in self.report_reminder_days if not 0 < d < self.report_days]
        if late:
            raise ValueError(f"report_reminder_days {late} must fall strictly between 0 and report_days")
        if self.payment_confirmation_max_days < self.payment_sla_days:
            raise ValueError("payment_confirmation_max_days must be at least payment_sla_days")
        return self


class Policy(_Strict):
    version: str
    effective_from: date
    description: str = ""
    eligibility: EligibilityPolicy
    pricing: PricingPolicy
    deadlines: DeadlinePolicy


class UnknownPolicyVersion(LookupError):
    pass


@cache
def load_policy(version: str = DEFAULT_POLICY_VERSION) -> Policy:
    """The policy of that version, validated; old versions stay loadable for replays and audits."""
    path = POLICIES_DIR / f"clusterxchange-{version}.toml"
    if not path.exists():
        known = sorted(p.stem.removeprefix("clusterxchange-") for p in POLICIES_DIR.glob("clusterxchange-*.toml"))
        raise UnknownPolicyVersion(f"policy_version {version!r}: no such policy (known: {', '.join(known)})")
    with path.open("rb") as handle:
        return Policy.model_validate(tomllib.load(handle))
