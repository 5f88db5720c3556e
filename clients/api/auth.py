"""Bearer tokens mapped to roles, and who may do what (docs/adr/0009-rest-api.md, the table).

Tokens come from configuration only (`CX_API_TOKENS`), parsed once by `load_tokens`. The role sets below
are the table of the ADR in code; the routers check them before anything reaches Temporal or the ledger.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

Role = Literal["officer", "reviewer", "applicant", "service", "ops"]
MIN_TOKEN_LENGTH = 16

# Officers and services act for others; reviewers and applicants act only as themselves, on their own
# exchanges, and only through the messages of their role; ops reads everything and writes nothing.
STARTERS: frozenset[Role] = frozenset({"service", "officer", "applicant"})
READERS: frozenset[Role] = frozenset({"officer", "reviewer", "applicant", "service", "ops"})
BACK_OFFICE_READERS: frozenset[Role] = frozenset({"officer", "service", "ops"})
SIGNALLERS: frozenset[Role] = frozenset({"officer", "service"})
ACTS_FOR_OTHERS: frozenset[Role] = frozenset({"officer", "service"})
OFFICERS: frozenset[Role] = frozenset({"officer"})
EVIDENCE_UPLOADERS: frozenset[Role] = frozenset({"officer", "service", "applicant"})
INBOX_READERS: frozenset[Role] = frozenset({"officer", "service", "ops", "reviewer"})  # a reviewer: their own
UNAVAILABILITY_SETTERS: frozenset[Role] = frozenset({"officer", "reviewer"})  # a reviewer: their own
# Backdating a submission moves the lead-time rule (R13): only a back office importing records may.
IMPORTERS: frozenset[Role] = frozenset({"officer", "service"})

REVIEWER_UPDATES = frozenset({"submit_review", "declare_conflict", "request_changes"})
APPLICANT_UPDATES = frozenset(
    {"amend_application", "withdraw", "sign_commitment", "confirm_match", "amend_dates", "submit_report"}
)
# `funds_held` is the Funds workflow's word that money is on hold: a caller able to send it could make an
# exchange believe in a hold that the ledger never booked, so it has no route.
INTERNAL_SIGNALS = frozenset({"funds_held"})


class Principal(BaseModel):
    """Who a bearer token stands for."""

    subject: str = Field(min_length=1, max_length=128)
    role: Role


class TokenConfigError(ValueError):
    """CX_API_TOKENS is missing or malformed; the message says which token and field."""


def load_tokens(environ: Mapping[str, str] | None = None) -> dict[str, Principal]:
    """Parse `CX_API_TOKENS` (JSON `{"<token>": {"subject": "...", "role": "..."}}`) once at start-up."""
    env = os.environ if environ is None else environ
    raw = env.get("CX_API_TOKENS")
    if not raw:
        raise TokenConfigError('CX_API_TOKENS is not set: give JSON {"<token>": {"subject": "...", "role": "..."}}')
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise TokenConfigError(f"CX_API_TOKENS is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not data:
        raise TokenConfigError("CX_API_TOKENS must be a non-empty JSON object of token -> {subject, role}")
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
            raise TokenConfigError(f"CX_API_TOKENS entry #{index + 1} ({value!r}): {details}") from None
    return tokens
