"""The REST API: start and drive exchanges over HTTP with bearer tokens mapped to roles (docs/adr/0009-rest-api.md).

Every route but `/healthz` and `/readyz` needs a token from `CX_API_TOKENS`; every error is an RFC 9457
problem document naming the field. The app holds no globals: `create_app` receives the ExchangeClient,
the Postgres pool and the token table, so tests build it against the real stack.
"""

# No `from __future__ import annotations`: FastAPI must see the real types of routes defined in create_app.

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from clients.client import (
    DecisionRefused,
    DuplicateApplication,
    ExchangeClient,
    ExchangeClientError,
    ExchangeNotFound,
    InvalidInput,
)
from ledger.store import LedgerStore
from schemas.converter import DATA_CONVERTER
from schemas.exchange import ApplicationInput, ExchangeStatus
from schemas.ids import _ID_PATTERN, exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import TERMINAL_STAGES, Stage
from workers.main import database_pool
from workers.runtime import resolve_database_url, resolve_temporal_address
from workers.settings import Settings

Role = Literal["officer", "reviewer", "applicant", "service", "ops"]
PROBLEM_MEDIA_TYPE = "application/problem+json"
LIST_LIMIT_MAX = 100
LIST_OFFSET_MAX = 100_000
READY_TIMEOUT_S = 2.0

# Ids are checked at the door (the pattern of schemas.ids), so nothing odd ever reaches SQL or Temporal.
ApplicationIdPath = Annotated[str, Path(pattern=_ID_PATTERN, description="the application id")]

# Who may do what (docs/adr/0009-rest-api.md). Officers and services act for others; reviewers and
# applicants act only as themselves, on their own exchanges, and only through the updates of their role.
STARTERS: frozenset[Role] = frozenset({"service", "officer", "applicant"})
READERS: frozenset[Role] = frozenset({"officer", "reviewer", "applicant", "service", "ops"})
BUDGET_READERS: frozenset[Role] = frozenset({"officer", "service", "ops"})
SIGNALLERS: frozenset[Role] = frozenset({"officer", "service"})
ACTS_FOR_OTHERS: frozenset[Role] = frozenset({"officer", "service"})
# `funds_held` is the Funds workflow's word that money is on hold: a caller able to send it could make an
# exchange believe in a hold that the ledger never booked, so it has no route (docs/adr/0009-rest-api.md).
INTERNAL_SIGNALS = frozenset({"funds_held"})
REVIEWER_UPDATES = frozenset({"submit_review", "declare_conflict", "request_changes"})
APPLICANT_UPDATES = frozenset(
    {"amend_application", "withdraw", "sign_commitment", "confirm_match", "amend_dates", "submit_report"}
)


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
        if len(token) < 16:
            raise TokenConfigError(f"CX_API_TOKENS entry #{index + 1}: token must be at least 16 characters")
        try:
            tokens[token] = Principal.model_validate(value)
        except ValidationError as error:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors())
            raise TokenConfigError(f"CX_API_TOKENS entry #{index + 1} ({value!r}): {details}") from None
    return tokens


# Problem details (RFC 9457) --------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document; `errors` names each offending field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class ProblemError(Exception):
    def __init__(
        self, status: int, title: str, detail: str, errors: list[tuple[str, str]] | None = None, problem_type: str = ""
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=problem_type or f"https://clusterxchange.example/problems/{title.lower().replace(' ', '-')}",
            title=title,
            status=status,
            detail=detail,
            errors=[FieldError(field=f, message=m) for f, m in errors or []],
        )
        self.headers: dict[str, str] = {}


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json"), status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": Problem.model_json_schema()}}}


AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: _problem_doc("missing or unknown bearer token"),
    403: _problem_doc("the token's role may not do this, or not on this exchange"),
    422: _problem_doc("invalid input; `errors` names each field"),
}
EXCHANGE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **AUTH_PROBLEMS,
    404: _problem_doc("no such exchange"),
    409: _problem_doc("refused by the workflow, or conflicting with an existing exchange"),
    503: _problem_doc("Temporal or Postgres did not answer"),
}


def _field_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def invalid(errors: list[tuple[str, str]]) -> ProblemError:
    fields = ", ".join(f for f, _ in errors)
    return ProblemError(422, "Invalid input", f"invalid input in: {fields}", errors)


def translate(error: ExchangeClientError) -> ProblemError:
    if isinstance(error, InvalidInput):
        return invalid(error.errors)
    if isinstance(error, ExchangeNotFound):
        return ProblemError(404, "Exchange not found", str(error), [("application_id", str(error))])
    if isinstance(error, DecisionRefused):
        return ProblemError(409, "Decision refused", str(error))
    if isinstance(error, DuplicateApplication):
        return ProblemError(409, "Duplicate application", str(error), [("application_id", str(error))])
    return ProblemError(503, "Engine unavailable", str(error))


# Responses -------------------------------------------------------------------------------------------


class Started(BaseModel):
    application_id: str
    workflow_id: str
    replayed: bool = Field(description="true when this application had already started this exchange")


class ExchangeRow(BaseModel):
    application_id: str
    stage: str
    partnership_id: str
    grant_cents: int | None
    held_cents: int
    paid_cents: int
    next_deadline: datetime | None


class ExchangePage(BaseModel):
    items: list[ExchangeRow]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last page")


class Budget(BaseModel):
    partnership_id: str
    allocated_cents: int
    held_cents: int
    paid_cents: int
    available_cents: int


class Accepted(BaseModel):
    application_id: str
    signal: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


_LIST_SQL = """
SELECT application_id, stage, partnership_id, grant_cents, held_cents, paid_cents, next_deadline
  FROM exchanges e
 WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR partnership_id = $2)
   AND (NOT $3 OR (next_deadline < now() AND stage <> ALL($4::text[])))
   AND ($5::text IS NULL OR submitted_by = $5)
   AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM review_assignments r
                                     WHERE r.application_id = e.application_id AND r.reviewer_id = $6))
 ORDER BY next_deadline NULLS LAST, application_id
 LIMIT $7 OFFSET $8"""


def create_app(exchanges: ExchangeClient, pool: asyncpg.Pool, tokens: dict[str, Principal]) -> FastAPI:
    """Build the API over one ExchangeClient and one pool; `tokens` maps bearer tokens to principals."""
    app = FastAPI(
        title="ClusterXchange",
        version="1",
        description="Start and drive exchanges. Errors are RFC 9457 problem documents (application/problem+json).",
    )
    ledger = LedgerStore(pool)
    bearer = HTTPBearer(auto_error=False)

    @app.exception_handler(ProblemError)
    async def on_problem(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return problem_response(error.problem, error.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [(_field_of(tuple(e.get("loc", ()))), str(e.get("msg", "invalid"))) for e in error.errors()]
        return problem_response(invalid(errors).problem)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
        return problem_response(Problem(title=title, status=error.status_code, detail=str(error.detail)))

    async def on_database_down(_: Request, error: Exception) -> JSONResponse:
        # A database that does not answer is the engine's trouble, not the caller's: 503, never a bare 500.
        return problem_response(Problem(title="Read model unavailable", status=503, detail=f"postgres: {error}"))

    for database_error in (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(database_error, on_database_down)

    async def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        found = tokens.get(credentials.credentials) if credentials else None
        if found is None:
            problem = ProblemError(
                401,
                "Unauthorized",
                "unknown bearer token" if credentials else "a bearer token is required",
                [("Authorization", "expected 'Bearer <token>' with a configured token")],
            )
            problem.headers["WWW-Authenticate"] = "Bearer"
            raise problem
        return found

    # A type alias over this app's own dependency, so it lives here and reads like a type.
    Caller = Annotated[Principal, Depends(principal)]  # noqa: N806

    def require(who: Principal, roles: frozenset[Role], action: str) -> None:
        if who.role not in roles:
            raise ProblemError(403, "Forbidden", f"role {who.role!r} may not {action}")

    async def require_access(who: Principal, application_id: str) -> None:
        """Reviewers see only exchanges assigned to them; applicants only those they submitted."""
        if who.role == "reviewer":
            assigned = await pool.fetchval(
                "SELECT 1 FROM review_assignments WHERE application_id = $1 AND reviewer_id = $2",
                application_id,
                who.subject,
            )
            if not assigned:
                raise ProblemError(403, "Forbidden", f"{application_id!r} is not assigned to {who.subject!r}")
        elif who.role == "applicant":
            submitted_by = await pool.fetchval(
                "SELECT submitted_by FROM exchanges WHERE application_id = $1", application_id
            )
            if submitted_by is None:
                # The read model lags the start by a moment: the workflow's own start input is the truth.
                original = await original_application(application_id)
                submitted_by = original.submitted_by if original else None
            if submitted_by != who.subject:
                raise ProblemError(403, "Forbidden", f"{application_id!r} was not submitted by {who.subject!r}")

    async def original_application(application_id: str) -> ApplicationInput | None:
        """The ApplicationInput the exchange was started with, read from its history (None if unknown)."""
        try:
            handle = exchanges.temporal.get_workflow_handle(exchange_workflow_id(application_id))
        except ValueError:
            return None
        try:
            async for event in handle.fetch_history_events():
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = await DATA_CONVERTER.decode(payloads, [ApplicationInput])
                first = decoded[0] if decoded else None
                return first if isinstance(first, ApplicationInput) else None
        except RPCError:
            return None
        return None

    def check_actor(who: Principal, body: BaseModel) -> None:
        if who.role in ACTS_FOR_OTHERS:
            return
        field = "actor_id" if "actor_id" in type(body).model_fields else "confirmed_by"
        actor = getattr(body, field, None)
        if actor != who.subject:
            raise ProblemError(
                403, "Forbidden", f"{field} must be {who.subject!r}: you may act only as yourself", [(field, "not you")]
            )

    # Probes ------------------------------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", response_model=Health, tags=["ops"], responses={503: _problem_doc("a dependency is down")})
    async def readyz() -> Health:
        try:
            await pool.fetchval("SELECT 1", timeout=READY_TIMEOUT_S)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise ProblemError(503, "Not ready", f"postgres: {error}") from None
        try:
            await exchanges.temporal.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=READY_TIMEOUT_S)
            )
        except RPCError as error:
            raise ProblemError(503, "Not ready", f"temporal: {error.message}") from None
        return Health()

    # Exchanges ---------------------------------------------------------------------------------------

    @app.post(
        "/exchanges",
        response_model=Started,
        status_code=201,
        tags=["exchanges"],
        responses={**EXCHANGE_PROBLEMS, 200: {"model": Started, "description": "a replay of an earlier start"}},
    )
    async def start_exchange(body: ApplicationInput, who: Caller, response: Response) -> Started:
        require(who, STARTERS, "start exchanges")
        if who.role == "applicant" and body.submitted_by != who.subject:
            raise ProblemError(
                403, "Forbidden", "an applicant may start only their own applications", [("submitted_by", "not you")]
            )
        try:
            workflow_id = await exchanges.start_exchange(body)
        except DuplicateApplication:
            original = await original_application(body.application_id)
            if original is not None and original.model_dump(mode="json") == body.model_dump(mode="json"):
                response.status_code = 200
                workflow_id = exchange_workflow_id(body.application_id)
                return Started(application_id=body.application_id, workflow_id=workflow_id, replayed=True)
            raise ProblemError(
                409,
                "Conflicting application",
                f"application_id {body.application_id!r} already started an exchange with a different application",
                [("application_id", "already used by a different application")],
            ) from None
        except ExchangeClientError as error:
            raise translate(error) from None
        response.headers["Location"] = f"/exchanges/{body.application_id}"
        return Started(application_id=body.application_id, workflow_id=workflow_id, replayed=False)

    @app.get(
        "/exchanges/{application_id}", response_model=ExchangeStatus, tags=["exchanges"], responses=EXCHANGE_PROBLEMS
    )
    async def get_status(application_id: ApplicationIdPath, who: Caller) -> ExchangeStatus:
        require(who, READERS, "read exchanges")
        await require_access(who, application_id)
        try:
            return await exchanges.status(application_id)
        except ExchangeClientError as error:
            raise translate(error) from None

    @app.get("/exchanges", response_model=ExchangePage, tags=["exchanges"], responses=AUTH_PROBLEMS)
    async def list_exchanges(
        who: Caller,
        stage: Stage | None = None,
        partnership: Annotated[str | None, Query(pattern=_ID_PATTERN)] = None,
        late: bool = False,
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
        offset: Annotated[int, Query(ge=0, le=LIST_OFFSET_MAX)] = 0,
    ) -> ExchangePage:
        require(who, READERS, "list exchanges")
        rows = await pool.fetch(
            _LIST_SQL,
            stage.value if stage else None,
            partnership,
            late,
            [s.value for s in TERMINAL_STAGES],
            who.subject if who.role == "applicant" else None,
            who.subject if who.role == "reviewer" else None,
            limit + 1,
            offset,
        )
        items = [ExchangeRow.model_validate(dict(row)) for row in rows[:limit]]
        return ExchangePage(
            items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > limit else None
        )

    @app.get("/budgets", response_model=list[Budget], tags=["budgets"], responses=AUTH_PROBLEMS)
    async def budgets(who: Caller) -> list[Budget]:
        require(who, BUDGET_READERS, "read budgets")
        return [Budget.model_validate(b, from_attributes=True) for b in await ledger.partnership_balances()]

    for name, model in UPDATES.items():
        app.post(
            f"/exchanges/{{application_id}}/updates/{name}",
            response_model=ExchangeStatus,
            tags=["updates"],
            name=f"update_{name}",
            summary=f"Send the `{name}` update",
            responses=EXCHANGE_PROBLEMS,
        )(_update_route(name, model, exchanges, Caller, require, require_access, check_actor))

    for name, model in SIGNALS.items():
        if name in INTERNAL_SIGNALS:
            continue
        app.post(
            f"/exchanges/{{application_id}}/signals/{name}",
            response_model=Accepted,
            status_code=202,
            tags=["signals"],
            name=f"signal_{name}",
            summary=f"Send the `{name}` signal",
            responses=EXCHANGE_PROBLEMS,
        )(_signal_route(name, model, exchanges, Caller, require))

    return app


def _update_route(
    name: str,
    model: type[BaseModel],
    exchanges: ExchangeClient,
    caller: Any,
    require: Callable[[Principal, frozenset[Role], str], None],
    require_access: Callable[[Principal, str], Awaitable[None]],
    check_actor: Callable[[Principal, BaseModel], None],
) -> Callable[..., Awaitable[ExchangeStatus]]:
    """One endpoint per update, so the OpenAPI document carries each update's own body schema."""

    async def endpoint(
        application_id: ApplicationIdPath,
        body: BaseModel,
        who: Principal,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> ExchangeStatus:
        allowed: frozenset[Role] = frozenset({"officer", "service", "reviewer", "applicant"})
        require(who, allowed, f"send {name}")
        if who.role == "reviewer" and name not in REVIEWER_UPDATES:
            raise ProblemError(403, "Forbidden", f"a reviewer may not send {name}")
        if who.role == "applicant" and name not in APPLICANT_UPDATES:
            raise ProblemError(403, "Forbidden", f"an applicant may not send {name}")
        check_actor(who, body)
        await require_access(who, application_id)
        try:
            return await exchanges.decide(application_id, name, body, update_id=idempotency_key)
        except ExchangeClientError as error:
            raise translate(error) from None

    endpoint.__annotations__ = {
        "application_id": ApplicationIdPath,
        "body": model,
        "who": caller,
        "idempotency_key": Annotated[str | None, Header(max_length=128)],
        "return": ExchangeStatus,
    }
    endpoint.__name__ = f"update_{name}"
    return endpoint


def _signal_route(
    name: str,
    model: type[BaseModel],
    exchanges: ExchangeClient,
    caller: Any,
    require: Callable[[Principal, frozenset[Role], str], None],
) -> Callable[..., Awaitable[Accepted]]:
    """Signals are facts from finance and other services: only officers and services send them."""

    async def endpoint(application_id: ApplicationIdPath, body: BaseModel, who: Principal) -> Accepted:
        require(who, SIGNALLERS, f"send {name}")
        try:
            await exchanges.temporal.get_workflow_handle(exchange_workflow_id(application_id)).signal(name, body)
        except ValueError as error:
            raise invalid([("application_id", str(error))]) from None
        except RPCError as error:
            raise translate(await _signal_failure(exchanges, application_id, error)) from None
        return Accepted(application_id=application_id, signal=name)

    endpoint.__annotations__ = {"application_id": ApplicationIdPath, "body": model, "who": caller, "return": Accepted}
    endpoint.__name__ = f"signal_{name}"
    return endpoint


async def _signal_failure(exchanges: ExchangeClient, application_id: str, error: RPCError) -> ExchangeClientError:
    try:
        await exchanges.status(application_id)
    except ExchangeClientError as translated:
        return translated
    return DecisionRefused(f"application_id {application_id!r}: the exchange has ended ({error.message})")


async def serve(settings: Settings, tokens: dict[str, Principal], host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API until interrupted (what `cx api` calls): one pool and one Temporal client per process."""
    import uvicorn  # only the serving process needs it

    exchanges = await ExchangeClient.connect(
        resolve_temporal_address(settings), namespace=settings.temporal_namespace, task_queue=settings.task_queue
    )
    async with database_pool(resolve_database_url(settings)) as pool:
        app = create_app(exchanges, pool, tokens)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).serve()
