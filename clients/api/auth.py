"""Bearer tokens mapped to principals: who a token stands for and what it may act for (docs/security.md).

Tokens come from configuration only (`CX_API_TOKENS`, read with the process's Settings), parsed once by
`parse_tokens`. A principal has a
subject (the person or system), a role, and the organisations and partnerships it may act for: the
parties of R10 (HO and VO are organisations, HOP and VOP partnerships). Who may do what with them is the
table in clients/api/access.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.ids import OrganisationId, PartnershipId

Role = Literal["officer", "reviewer", "applicant", "service", "ops"]
MIN_TOKEN_LENGTH = 16
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
    """CX_API_TOKENS is missing or malformed; the message says which token and field."""


_SHAPE = '{"<token>": {"subject": "...", "role": "...", "organisations": [...], "partnerships": [...]}}'


def load_tokens(variables: Mapping[str, str]) -> dict[str, Principal]:
    """`parse_tokens` of the `CX_API_TOKENS` entry of a mapping of variables (tests, tools)."""
    return parse_tokens(variables.get("CX_API_TOKENS"))


def parse_tokens(raw: str | None) -> dict[str, Principal]:
    """Parse the value of `CX_API_TOKENS` (JSON, see _SHAPE; the two lists are optional) once at start-up."""
    if not raw:
        raise TokenConfigError(f"CX_API_TOKENS is not set: give JSON {_SHAPE}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise TokenConfigError(f"CX_API_TOKENS is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not data:
        raise TokenConfigError(f"CX_API_TOKENS must be a non-empty JSON object: {_SHAPE}")
    tokens: dict[str, Principal] = {}
    for index, (token, value) in enumerate(data.items()):
        if len(token) < MIN_TOKEN_LENGTH:
            raise TokenConfigError(
                f"CX_API_TOKENS entry #{index + 1}: token must be at least {MIN_TOKEN_LENGTH} characters"
            )
        try:
            tokens[token] = Principal.model_validate(value)
        except ValidationError as error:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors())
            # The entry's subject and role name it; the token itself is a secret and never printed.
            where = value.get("subject") if isinstance(value, dict) else None
            raise TokenConfigError(f"CX_API_TOKENS entry #{index + 1} ({where!r}): {details}") from None
    return tokens
