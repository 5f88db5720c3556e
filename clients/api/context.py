"""What every route needs: the engine's handles (`Api`, one per app), the caller, and the checks on both.

The app keeps its `Api` in `app.state`, so routers are plain module-level `APIRouter`s with no globals:
tests build as many apps as they like, each on its own stack. Authorisation follows the table of
clients/api/access.py: `permitted(operation)` refuses a kind that may not act at all before the body is
read; `authorise` checks, once the body is parsed, how the caller stands to the exchange and who the body
says acts. Every call to Temporal goes through `engine_call`, bounded in time (issue 11, item 4).
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from clients.api.access import (
    ACTIONS,
    EXCHANGE_READ,
    Action,
    Facts,
    Grant,
    Kind,
    Reach,
    actor_refusal,
    grant_for,
    kind_of,
    reaches,
)
from clients.api.auth import Principal
from clients.api.identities import Identities, Unauthenticated
from clients.api.problems import ProblemError, forbidden, not_found
from clients.client import ExchangeClient
from ledger.evidence_store import EvidenceStore
from ledger.store import LedgerStore
from schemas.exchange import ApplicationInput, Party
from schemas.ids import exchange_workflow_id

# A reviewer reaches an exchange while their assignment stands: open, answered, or closed with the stage.
# A declared conflict (`recused`) or an officer's reassignment (`reassigned`) takes it away (need to know).
STANDING_ASSIGNMENTS = ("open", "submitted", "closed")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Api:
    """The engine as the API reaches it: one Temporal client, one pool, the identities, the evidence store.

    `engine_timeout_s` bounds every call to Temporal; `request_deadline_s` bounds a whole request once its
    body has arrived (clients/api/guards.py), so that nothing, not even a locked row, holds a caller.
    """

    exchanges: ExchangeClient
    pool: asyncpg.Pool
    identities: Identities
    evidence_store: EvidenceStore
    ledger: LedgerStore
    engine_timeout_s: float
    request_deadline_s: float


def get_api(request: Request) -> Api:
    api = request.app.state.api
    assert isinstance(api, Api), "create_app stores the Api in app.state"
    return api


Engine = Annotated[Api, Depends(get_api)]
_bearer = HTTPBearer(auto_error=False)  # documents the scheme in OpenAPI; guards.Authenticate enforces it


def unauthorised(reason: str | None) -> ProblemError:
    """401: no token (`reason` None) or one that names no principal, saying why (never quoting the token)."""
    return ProblemError(
        401,
        "Unauthorized",
        reason or "a bearer token is required",
        [("Authorization", "expected 'Bearer <token>' with a configured token or a token of the sign-in")],
        headers={"WWW-Authenticate": "Bearer" if reason is None else 'Bearer error="invalid_token"'},
    )


async def principal(
    request: Request, api: Engine, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    # The Authenticate middleware found it before the body was read; looked up again here only when the
    # app runs without it (a test mounting a router alone).
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    if credentials is None:
        raise unauthorised(None)
    try:
        return await api.identities.principal(credentials.credentials)
    except Unauthenticated as refused:
        raise unauthorised(str(refused)) from None


Caller = Annotated[Principal, Depends(principal)]


@dataclass(frozen=True)
class Permit:
    """A caller whose kind may do the action at all; `cell` says where and as whom."""

    who: Principal
    action: Action
    cell: Grant

    @property
    def kind(self) -> Kind:
        return kind_of(self.who)


def permitted(operation_id: str) -> Any:
    """`Annotated[Permit, permitted("submitReview")]`: the caller, refused (403) unless their kind may do it.

    A dependency, declared before the body, so that a caller who may not act at all learns that first,
    before the body is read or validated.
    """
    action = ACTIONS[operation_id]

    async def caller_permitted(who: Caller) -> Permit:
        cell = grant_for(action, who)
        if cell is None:
            raise forbidden(f"a principal of kind {kind_of(who).value!r} may not {action.summary}")
        return Permit(who, action, cell)

    return Depends(caller_permitted)


# Facts and authorisation --------------------------------------------------------------------------------


async def exchange_facts(api: Api, application_id: str, reviewer: str | None = None) -> Facts | None:
    """Submitter and parties from the read model (or, a moment after the start, the start input itself);
    for a reviewer, whether their assignment stands. None when there is no such exchange."""
    row = await api.pool.fetchrow(
        "SELECT submitted_by, visitor_org_id, host_org_id, partnership_id, host_partnership_id"
        "  FROM exchanges WHERE application_id = $1",
        application_id,
    )
    assigned = reviewer is not None and bool(
        await api.pool.fetchval(
            "SELECT 1 FROM review_assignments WHERE application_id = $1 AND reviewer_id = $2 AND status = ANY($3)",
            application_id,
            reviewer,
            list(STANDING_ASSIGNMENTS),
        )
    )
    if row is not None:
        parties = {
            Party.VISITOR_ORGANISATION: row["visitor_org_id"],
            Party.HOST_ORGANISATION: row["host_org_id"],
            Party.VISITOR_PARTNERSHIP: row["partnership_id"],
            Party.HOST_PARTNERSHIP: row["host_partnership_id"],
        }
        return Facts(submitted_by=row["submitted_by"], parties=parties, assigned=assigned)
    original = await original_application(api, application_id)
    if original is None:
        return Facts(submitted_by=None, parties={}, assigned=True) if assigned else None
    return Facts(submitted_by=original.submitted_by, parties=application_parties(original), assigned=assigned)


def application_parties(app: ApplicationInput) -> dict[Party, str]:
    return {
        Party.HOST_ORGANISATION: app.host.organisation_id,
        Party.HOST_PARTNERSHIP: app.host_partnership_id,
        Party.VISITOR_ORGANISATION: app.visitor.organisation_id,
        Party.VISITOR_PARTNERSHIP: app.visitor_partnership_id,
    }


async def authorise(api: Api, permit: Permit, application_id: str, body: M | None = None) -> M | None:
    """Refuse (403) unless the caller reaches this exchange as their cell says and the body's actor is theirs
    to name; answer the body, with `on_behalf_of` filled in for a party's act when the caller left it out.

    A caller who may not read the exchange gets 404, exactly as for an exchange that does not exist, so a
    token learns nothing about exchanges it may not reach; a caller who reads it and may not do this gets 403.
    """
    who, cell, action = permit.who, permit.cell, permit.action
    act = action.party_act
    acted_for = act.acted_for(body) if act is not None and body is not None else None
    facts: Facts | None = None
    if Reach.ANY not in cell.reach or acted_for is not None:
        facts = await exchange_facts(api, application_id, who.subject if permit.kind is Kind.REVIEWER else None)
    if not reaches(who, cell, facts, acted_for):
        if facts is None or not may_read(who, facts):
            # Not theirs to know of: the very answer a non-existent exchange gets (issue 16, item 3).
            raise no_such_exchange(application_id)
        if act is not None and acted_for is not None and facts is not None and acted_for in facts.parties:
            party_id = facts.parties[acted_for]
            raise forbidden(
                f"{who.subject!r} does not act for {acted_for.value} ({party_id}) of {application_id!r}",
                act.field,
                f"your credentials do not name {party_id}: only a principal of {acted_for.value} acts for it",
            )
        raise forbidden(
            f"{application_id!r} is not an exchange {who.subject!r} may {action.summary} on",
            "application_id",
            "not yours to reach",
        )
    if body is not None and action.actor_field is not None:
        refusal = actor_refusal(who, cell, getattr(body, action.actor_field, None))
        if refusal:
            raise forbidden(f"{action.actor_field} {refusal}", action.actor_field, refusal)
    if body is not None and acted_for is not None:
        assert facts is not None, "a party's act was checked against the exchange's parties"
        expected = facts.parties[acted_for]
        stated = getattr(body, "on_behalf_of", None)
        if stated is None:
            return body.model_copy(update={"on_behalf_of": expected})
        if stated != expected:
            raise forbidden(
                f"on_behalf_of {stated!r} is not {acted_for.value} of {application_id!r} ({expected})",
                "on_behalf_of",
                f"must be {expected} (or left out)",
            )
    return body


def may_read(who: Principal, facts: Facts) -> bool:
    """The caller may read this exchange (so may learn that it exists)."""
    cell = EXCHANGE_READ.get(kind_of(who))
    return cell is not None and reaches(who, cell, facts)


def no_such_exchange(application_id: str) -> ProblemError:
    return not_found("Exchange", "application_id", f"application_id {application_id!r}: no such exchange")


async def require_exchange(api: Api, application_id: str) -> None:
    """404 unless the exchange exists (in the read model, or, just after its start, in Temporal)."""
    if await api.pool.fetchval("SELECT 1 FROM exchanges WHERE application_id = $1", application_id):
        return
    if await original_application(api, application_id) is None:
        raise no_such_exchange(application_id)


async def original_application(api: Api, application_id: str) -> ApplicationInput | None:
    """The ApplicationInput the exchange was started with, read from its history (None if unknown)."""
    try:
        handle = api.exchanges.temporal.get_workflow_handle(exchange_workflow_id(application_id))
    except ValueError:
        return None
    try:
        async with engine_call(api):
            async for event in handle.fetch_history_events():
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = await api.exchanges.temporal.data_converter.decode(payloads, [ApplicationInput])
                first = decoded[0] if decoded else None
                return first if isinstance(first, ApplicationInput) else None
    except (RPCError, ApplicationError):
        # Unknown id, or a start input the strict converter refuses (the workflow refused it too).
        return None
    return None


# Bounded calls to the engine ----------------------------------------------------------------------------


def engine_timeout(seconds: float) -> ProblemError:
    return ProblemError(
        504,
        "Engine timeout",
        f"the engine did not answer within {seconds:g} s; the decision may still be applied: "
        "retry with the same Idempotency-Key",
        [("Idempotency-Key", "send the same request again with the same key: it is applied at most once")],
    )


@contextlib.asynccontextmanager
async def engine_call(api: Api) -> AsyncIterator[None]:
    """Bound a call to Temporal by `api.engine_timeout_s`; past it, a 504 problem saying what to do.

    An update to an exchange whose worker is down would otherwise wait as long as the server lets it; the
    caller would hold a connection with no answer. The update may still be applied later: the same request
    with the same Idempotency-Key becomes the same Temporal update id, so it is applied once.
    """
    bound = asyncio.timeout(api.engine_timeout_s)
    try:
        async with bound:
            yield
    except TimeoutError:
        raise engine_timeout(api.engine_timeout_s) from None
    except Exception:
        # Some SDK calls turn the cancellation into an error of their own (an update raises
        # WorkflowUpdateRPCTimeoutOrCancelledError, a client may translate it): the bound passed all the same.
        if bound.expired():
            raise engine_timeout(api.engine_timeout_s) from None
        raise
