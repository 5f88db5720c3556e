"""The REST API: every door of the engine over HTTP, with bearer tokens mapped to roles (docs/adr/0009-rest-api.md).

`create_app` receives the ExchangeClient, the Postgres pool and the token table (no globals, so tests build
it against the real stack); the process that serves it (`cx api`, `make run`) builds them from its Settings
(workers/commands.py). Every route but the probes
and the docs needs a token; every error is an RFC 9457 problem document naming the field; `/docs` is
Swagger UI served from this package (clients/api/static/swagger-ui), so it works with no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from clients.api.access_log import AccessLog, bind_exchange_id
from clients.api.auth import Principal, TokenConfigError
from clients.api.body import BodyLimit, BodyTooLarge, too_large_response
from clients.api.context import Api
from clients.api.guards import Authenticate, Deadline
from clients.api.identities import Identities
from clients.api.methods import allowed_methods
from clients.api.metrics import ApiMetrics, add_metrics_route, gauge_lifespan
from clients.api.openapi import build_openapi
from clients.api.problems import Problem, ProblemError, invalid, problem_response, problem_type
from clients.api.rate_limits import RateLimits
from clients.api.routers import budgets, codec, evidence, exchanges, ops, oversight, policy, privacy, reports, reviews
from clients.api.static_tokens import load_tokens, parse_tokens
from clients.client import ExchangeClient
from clients.config import DEFAULT_API_ENGINE_TIMEOUT_S, DEFAULT_API_MAX_BODY_BYTES, DEFAULT_EVIDENCE_DIR
from ledger.evidence_store import EvidenceStore, EvidenceStoreUnavailable, FileEvidenceStore
from ledger.store import LedgerStore

__all__ = ["Principal", "TokenConfigError", "create_app", "load_tokens", "parse_tokens"]

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI = "/static/swagger-ui"
# JSON bodies are small (an application is a few KiB); this bound only stops a runaway request
# (CX_API_MAX_BODY_BYTES). Evidence uploads have their own, larger limit (clients/api/routers/evidence.py).
MAX_BODY_BYTES = DEFAULT_API_MAX_BODY_BYTES
ENGINE_TIMEOUT_S = DEFAULT_API_ENGINE_TIMEOUT_S
# A request may call the engine more than once (its start input to check who submitted it, then the
# update), each call bounded by the engine timeout; the whole request gets this many of them.
REQUEST_DEADLINE_FACTOR = 3
_TITLES = {404: "Not found", 405: "Method not allowed"}
ROUTERS = (
    ops.router,
    exchanges.router,
    evidence.router,
    reviews.router,
    budgets.router,
    policy.router,
    oversight.router,
    privacy.router,  # issue 16, item 2
    reports.router,  # issue 17, items 3 and 5
)
DESCRIPTION = (
    "Start and drive exchanges of the ClusterXchange grant scheme. Bearer tokens map to principals: a "
    "role (officer, reviewer, applicant, service, ops) and the organisations and partnerships they act "
    "for; who may do what, where and for which party is docs/security.md. Bodies are JSON validated "
    "strictly, exactly as the workflow validates them. Errors are RFC 9457 problem documents "
    "(application/problem+json). Every POST that changes something takes an `Idempotency-Key`."
)

TAGS: list[dict[str, Any]] = [
    {"name": "exchanges", "description": "Start, read and list exchanges; explanation and ledger history."},
    {"name": "updates", "description": "Decisions that need an answer (one operation per update of the contract)."},
    {"name": "signals", "description": "Facts from other systems (finance's payment confirmation, released funds)."},
    {"name": "evidence", "description": "The closing report's evidence files."},
    {"name": "reviews", "description": "Reviewers, their unavailability and their inboxes."},
    {"name": "budgets", "description": "Budgets, partnerships and top-ups."},
    {"name": "policy", "description": "Policy versions and dry runs of a candidate."},
    {
        "name": "oversight",
        "description": "The back office's views (counts, waitlists, stuck exchanges, timelines, payment orders) "
        "and the bulk import of applications.",
    },
    {"name": "privacy", "description": "A person's data as one document (GDPR art. 15): officers only."},
    {
        "name": "reports",
        "description": "The Commission's KPI report and the back office's exports (CSV, XLSX, HTML).",
    },
    {"name": "ops", "description": "Probes (no token)."},
]


def create_app(
    exchanges_client: ExchangeClient,
    pool: asyncpg.Pool,
    tokens: Mapping[str, Principal] | Identities,
    *,
    rate_limits: RateLimits | None = None,
    evidence_store: EvidenceStore | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    engine_timeout_s: float = ENGINE_TIMEOUT_S,
    gauge_interval_s: float | None = None,
    codec_cors_origin: str | None = None,
) -> FastAPI:
    """Build the API over one ExchangeClient and one pool; `tokens` says who a bearer token stands for
    (Identities, or a plain table of principals); `rate_limits` bound writes and failed authentications.

    `evidence_store` is where uploads go (the process passes CX_EVIDENCE_DIR's, as `cx evidence add` uses;
    without one, the default directory); `max_body_bytes` and `engine_timeout_s` are CX_API_MAX_BODY_BYTES
    and CX_API_ENGINE_TIMEOUT_S; `gauge_interval_s` CX_GAUGE_INTERVAL_S (None: no refresher; clients/api/metrics.py).
    and CX_API_ENGINE_TIMEOUT_S; `codec_cors_origin` is CX_CODEC_CORS_ORIGIN (clients/api/routers/codec.py).
    """
    metrics = ApiMetrics()
    app = FastAPI(
        title="ClusterXchange",
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,  # served below from packaged assets, never from a CDN
        redoc_url=None,
        lifespan=gauge_lifespan(metrics, pool, gauge_interval_s),
        dependencies=[Depends(bind_exchange_id)],  # route log lines name their exchange (issue 15)
    )
    app.state.metrics = metrics
    identities = Identities.of(tokens)
    app.state.api = Api(
        exchanges=exchanges_client,
        pool=pool,
        identities=identities,
        evidence_store=evidence_store or FileEvidenceStore(DEFAULT_EVIDENCE_DIR.resolve()),
        ledger=LedgerStore(pool),
        engine_timeout_s=engine_timeout_s,
        request_deadline_s=REQUEST_DEADLINE_FACTOR * engine_timeout_s,
    )
    _add_error_handlers(app)
    # The last added runs first: the token is checked before anything reads the body (a caller with no
    # token learns 401, never 413 or 422), then the request's deadline starts, then the body is bounded.
    app.add_middleware(
        BodyLimit,
        limit_bytes=max_body_bytes,
        larger={
            ("POST", evidence.UPLOAD_PATH): evidence.MAX_UPLOAD_BYTES,
            ("POST", "/app" + evidence.UPLOAD_PATH): evidence.MAX_UPLOAD_BYTES,  # the web's upload form
        },
    )
    app.add_middleware(Deadline, seconds=REQUEST_DEADLINE_FACTOR * engine_timeout_s)
    app.add_middleware(Authenticate, identities=identities, limits=rate_limits)
    codec.serve_codec(app, codec_cors_origin)  # its CORS outside the token check: a preflight carries no token
    # Outermost: logs and counts every request, the guards' refusals and the codec's preflights included.
    app.add_middleware(AccessLog, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    _add_docs(app)
    add_metrics_route(app, metrics)
    _add_web(app, pool, identities, rate_limits)
    app.openapi = lambda: build_openapi(app, ROUTERS)  # type: ignore[method-assign]
    # Built now, so that an operation without an id, an example or the shared Problem fails at start-up.
    app.openapi()
    return app


def _add_error_handlers(app: FastAPI) -> None:
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
    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if isinstance(error, BodyTooLarge):
            return too_large_response(error.limit_bytes)
        title = _TITLES.get(error.status_code, "HTTP error")
        problem = Problem(type=problem_type(title), title=title, status=error.status_code, detail=str(error.detail))
        headers = dict(error.headers or {})
        allow = allowed_methods(app.openapi(), request.url.path) if error.status_code == 405 else None
        if allow:  # every method of the path, not only the first route's (clients/api/methods.py)
            headers["Allow"] = allow
        return problem_response(problem, headers)

    async def on_database_down(_: Request, error: Exception) -> JSONResponse:
        # A database that does not answer is the engine's trouble, not the caller's: 503, never a bare 500.
        title = "Read model unavailable"
        return problem_response(Problem(type=problem_type(title), title=title, status=503, detail=f"postgres: {error}"))

    for database_error in (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(database_error, on_database_down)

    async def on_store_down(_: Request, error: Exception) -> JSONResponse:
        # The evidence store (CX_EVIDENCE_STORE) did not answer: as for the database, 503 and nothing recorded.
        title = "Evidence store unavailable"
        return problem_response(Problem(type=problem_type(title), title=title, status=503, detail=str(error)))

    app.add_exception_handler(EvidenceStoreUnavailable, on_store_down)


def _field_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _add_web(app: FastAPI, pool: asyncpg.Pool, identities: Identities, rate_limits: RateLimits | None) -> None:
    """The web app for people at /app (clients/web/), calling this app in process; `/` leads there."""
    from clients.web import create_web

    app.mount("/app", create_web(app, pool, identities, rate_limits))

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=303)


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs, its script, style and icon from this package: no external host, ever."""
    app.mount(SWAGGER_UI, StaticFiles(directory=STATIC_DIR / "swagger-ui"), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            # Swagger UI would otherwise fetch a badge from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
