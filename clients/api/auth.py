"""Bearer tokens mapped to principals: who a token stands for and what it may act for (docs/security.md).

A principal comes from a static token of the configuration (`CX_API_TOKENS` or `CX_API_TOKENS_FILE`,
clients/api/static_tokens.py) or from a signed OIDC token of the organisation's sign-in (clients/api/oidc.py);
clients/api/identities.py asks both. A principal has a subject (the person or system), a role, and the
organisations and partnerships it may act for: the parties of R10 (HO and VO are organisations, HOP and VOP
partnerships). Who may do what with them is the table in clients/api/access.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.ids import OrganisationId, PartnershipId

Role = Literal["officer", "reviewer", "applicant", "service", "ops"]
# More would be a configuration mistake (a whole registry pasted into one token), not a real principal.
MAX_PARTIES_PER_PRINCIPAL = 1000

# `funds_held` is the Funds workflow's word that money is on hold: a caller able to send it could make an
# exchange believe in a hold that the ledger never booked, so it has no route.
INTERNAL_SIGNALS = frozenset({"funds_held"})


class Principal(BaseModel):
    """Who a bearer token stands for: a subject, a role and the parties it may act for.

    Entries written before parties existed (`{"subject", "role"}`) stay valid: they act for no party. An
    unknown key is refused, so that a misspelt `organisation` never silently grants nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1, max_length=128)
    role: Role
    organisations: frozenset[OrganisationId] = Field(
        default=frozenset(),
        max_length=MAX_PARTIES_PER_PRINCIPAL,
        description="organisations this principal acts for (the HO or VO of an exchange)",
    )
    partnerships: frozenset[PartnershipId] = Field(
        default=frozenset(),
        max_length=MAX_PARTIES_PER_PRINCIPAL,
        description="partnerships this principal acts for (the HOP or VOP of an exchange)",
    )


class TokenConfigError(ValueError):
    """CX_API_TOKENS (or CX_API_TOKENS_FILE) is missing or malformed; the message names the entry, never a token."""
