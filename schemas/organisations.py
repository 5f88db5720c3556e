"""Organisations taking part in an exchange (visitor and host)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from schemas.ids import OrganisationId
from schemas.text import Name


def _country_code(value: str) -> str:
    if not (len(value) == 2 and value.isascii() and value.isalpha() and value.isupper()):
        raise ValueError(f"must be an ISO 3166-1 alpha-2 country code in capitals, like PL or XK (got {value!r})")
    return value


# The JSON Schema states the same rule as the validator (which words the refusal for people): any two capital
# letters. Whether the country takes part in the programme is rule R4 of the exchange's policy version
# (`participating_countries`), screened after the start so the refusal names the rule; not a format.
COUNTRY_CODE_SCHEMA = {
    "type": "string",
    "pattern": "^[A-Z]{2}$",
    "minLength": 2,
    "maxLength": 2,
    "description": "ISO 3166-1 alpha-2 code in capitals (Kosovo: XK); whether it takes part in the programme is "
    "screened by rule R4 against the policy version's participating countries",
}
CountryCode = Annotated[str, AfterValidator(_country_code), WithJsonSchema(COUNTRY_CODE_SCHEMA)]


class OrganisationType(StrEnum):
    CLUSTER_ORGANISATION = "cluster_organisation"
    BUSINESS_NETWORK = "business_network"
    SCALE_UP_SUPPORT = "scale_up_support"  # technology centre, research institute, hub, lab, incubator...
    SME = "sme"
    # Host-only types (R2).
    TRAINING_PROVIDER = "training_provider"
    LARGE_COMPANY = "large_company"
    PUBLIC_AUTHORITY = "public_authority"


class Organisation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    organisation_id: OrganisationId
    name: Name
    type: OrganisationType
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country of registration (Kosovo: XK)")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    member_of_profiled_cluster: bool = Field(
        default=False,
        description="R3: an SME must be a member of a cluster profiled on the European Cluster Collaboration Platform",
    )
    # Added after workflow histories were recorded: False keeps their payloads decodable, and it is the safe
    # reading of an organisation that did not say (a policy that asks for membership refuses it, naming why).
    cluster_member: bool = Field(
        default=False,
        description="R1: a member of a cluster; a scaling-up support organisation (technology centre, research "
        "institute, innovation hub, fab lab, incubator, accelerator) may visit only as one. A member of a "
        "profiled cluster (member_of_profiled_cluster) is a cluster member too.",
    )
