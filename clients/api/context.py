"""What every route needs: the engine's handles (`Api`, one per app) and the caller (`Principal`).

The app keeps its `Api` in `app.state`, so routers are plain module-level `APIRouter`s with no globals:
tests build as many apps as they like, each on its own stack.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.evidence import EvidenceStore
from clients.api.auth import ACTS_FOR_OTHERS, Principal, Role
from clients.api.problems import ProblemError, forbidden, not_found
from clients.client import ExchangeClient
from ledger.store import LedgerStore
from schemas.converter import DATA_CONVERTER
from schemas.exchange import ApplicationInput
from schemas.ids import exchange_workflow_id


@dataclass(frozen=True)
class Api:
    """The engine as the API reaches it: one Temporal client, one pool, the token table, the evidence store."""

    exchanges: ExchangeClient
    pool: asyncpg.Pool
    tokens: dict[str, Principal]
    evidence_store: EvidenceStore
    ledger: LedgerStore


def get_api(request: Request) -> Api:
    api = request.app.state.api
    assert isinstance(api, Api), "create_app stores the Api in app.state"
    return api


Engine = Annotated[Api, Depends(get_api)]
_bearer = HTTPBearer(auto_error=False)


async def principal(
    api: Engine, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    found = api.tokens.get(credentials.credentials) if credentials else None
    if found is None:
        raise ProblemError(
            401,
            "Unauthorized",
            "unknown bearer token" if credentials else "a bearer token is required",
            [("Authorization", "expected 'Bearer <token>' with a configured token")],
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


Caller = Annotated[Principal, Depends(principal)]


def require(who: Principal, roles: frozenset[Role], action: str) -> None:
    if who.role not in roles:
        raise forbidden(f"role {who.role!r} may not {action}")


def allowed(roles: frozenset[Role], action: str) -> Any:
    """`Annotated[Principal, allowed(...)]`: the caller, refused (403) unless their role may `action`.

    A dependency, declared before the body, so that a caller who may not act at all learns that first,
    before the body is read or validated.
    """

    async def caller_in_role(who: Caller) -> Principal:
        require(who, roles, action)
        return who

    return Depends(caller_in_role)


def act_as(who: Principal, field: str, actor: str | None) -> None:
    """Reviewers and applicants act only as themselves: the body's actor must be the token's subject."""
    if who.role in ACTS_FOR_OTHERS:
        return
    if actor != who.subject:
        raise forbidden(f"{field} must be {who.subject!r}: you may act only as yourself", field)


async def require_access(api: Api, who: Principal, application_id: str) -> None:
    """Reviewers reach only exchanges assigned to them; applicants only those they submitted."""
    if who.role == "reviewer":
        assigned = await api.pool.fetchval(
            "SELECT 1 FROM review_assignments WHERE application_id = $1 AND reviewer_id = $2",
            application_id,
            who.subject,
        )
        if not assigned:
            raise forbidden(f"{application_id!r} is not assigned to {who.subject!r}")
    elif who.role == "applicant":
        submitted_by = await api.pool.fetchval(
            "SELECT submitted_by FROM exchanges WHERE application_id = $1", application_id
        )
        if submitted_by is None:
            # The read model lags the start by a moment: the workflow's own start input is the truth.
            original = await original_application(api, application_id)
            submitted_by = original.submitted_by if original else None
        if submitted_by != who.subject:
            raise forbidden(f"{application_id!r} was not submitted by {who.subject!r}")


async def require_exchange(api: Api, application_id: str) -> None:
    """404 unless the exchange exists (in the read model, or, just after its start, in Temporal)."""
    if await api.pool.fetchval("SELECT 1 FROM exchanges WHERE application_id = $1", application_id):
        return
    if await original_application(api, application_id) is None:
        raise not_found("Exchange", "application_id", f"application_id {application_id!r}: no such exchange")


async def original_application(api: Api, application_id: str) -> ApplicationInput | None:
    """The ApplicationInput the exchange was started with, read from its history (None if unknown)."""
    try:
        handle = api.exchanges.temporal.get_workflow_handle(exchange_workflow_id(application_id))
    except ValueError:
        return None
    try:
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            decoded = await DATA_CONVERTER.decode(payloads, [ApplicationInput])
            first = decoded[0] if decoded else None
            return first if isinstance(first, ApplicationInput) else None
    except (RPCError, ApplicationError):
        # Unknown id, or a start input the strict converter refuses (the workflow refused it too).
        return None
    return None
