"""Identifiers, the workflow-id scheme and the task queue: what other services need to address us."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

from schemas.text import Line

TASK_QUEUE = "clusterxchange"
EXCHANGE_WORKFLOW_TYPE = "Exchange"
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The pattern's own bounds, stated beside it so the JSON Schema says them too (issue 16: constrained strings
# described exactly); they refuse nothing the pattern accepts.
ID_MIN_LENGTH, ID_MAX_LENGTH = 1, 64
_ID = StringConstraints(pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH)

ApplicationId = Annotated[str, _ID]
PartnershipId = Annotated[str, _ID]
OrganisationId = Annotated[str, _ID]
# The organisation or partnership a person acts for (the parties of R10: HO, VO, HOP, VOP).
PartyId = Annotated[str, _ID]
# Who acted: one line of text, trimmed, no control characters (schemas/text.py).
ActorId = Line


def exchange_workflow_id(application_id: str) -> str:
    """`exchange:<application id>`: one workflow per application, forever (duplicates are refused)."""
    if not re.match(_ID_PATTERN, application_id):
        raise ValueError(f"application_id {application_id!r}: must match {_ID_PATTERN}")
    return f"exchange:{application_id}"


def hold_key(application_id: str, attempt: int = 1) -> str:
    """The ledger idempotency key of an exchange's n-th hold."""
    return f"{application_id}:hold:{attempt}"


def payment_order_id(application_id: str) -> str:
    """`po-<application id>`: an exchange's one payment order, as finance receives and confirms it."""
    return f"po-{application_id}"
