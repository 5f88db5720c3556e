"""The scale-out bench's actors speaking the REST API (docs/contract.md, clients/api/routers), round robin.

Every command of bench/drivers.py's actors (start, each update, the evidence upload, finance's
`confirm_payment`) is one HTTP request, sent to the API processes in turn, so that two `cx api`
processes share the load the way a load balancer would spread it. Each principal has its own bearer
token (CX_API_TOKENS, written by `api_tokens`): the back office imports the applications (an officer,
since they carry their original submission date), each reviewer reviews as themself, a partnership's
service (holding the run's organisations and partnerships) signs, confirms the match, reports and
validates, and finance (a programme service) confirms payments.

A request that fails in transit (a refused connection, 502/503/504: a worker killed mid-update) is sent
again with the same `Idempotency-Key`, to the next API, so the engine applies it once; a refusal of the
workflow (409/422 naming `refusal`) is raised as `DecisionRefused`, which the recorder retries with a
new request when it means "not yet".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.drivers import boarding_pass
from clients.client import DecisionRefused
from schemas.exchange import ApplicationInput

REQUEST_TIMEOUT_S = 45.0  # past the API's own bound on a request (3 x CX_API_ENGINE_TIMEOUT_S, 10 s)
TRANSIENT_ATTEMPTS = 30  # sends of one request through refused connections, 5xx and "still in flight"
TRANSIENT_PAUSE_S = 0.5
TRANSIENT_STATUSES = frozenset({502, 503, 504})
MAX_PARTIES_PER_TOKEN = 1000  # clients/api/auth.py MAX_PARTIES_PER_PRINCIPAL


class ApiRequestFailed(RuntimeError):
    """The API answered something the bench did not expect: the run is broken, not slow."""


@dataclass(frozen=True)
class ApiTokens:
    """The bench's principals' bearer tokens, and CX_API_TOKENS for the API processes."""

    officer: str
    finance: str
    reviewers: Mapping[str, str]  # reviewer id -> token
    party_service: Mapping[str, str]  # organisation id -> token of the service holding it
    config: str  # the JSON for CX_API_TOKENS

    def for_reviewer(self, reviewer_id: str) -> str:
        try:
            return self.reviewers[reviewer_id]
        except KeyError:
            raise ApiRequestFailed(f"no token for reviewer {reviewer_id!r}: not on a seeded panel") from None


def api_tokens(
    reviewer_ids: Sequence[str], apps: Sequence[ApplicationInput], partnership_ids: Sequence[str]
) -> ApiTokens:
    """One token per principal; the applications' organisations are shared among as many party services as
    the API allows parties per principal (each service holds every partnership)."""

    def token() -> str:
        return secrets.token_urlsafe(24)

    officer, finance = token(), token()
    entries: dict[str, dict[str, Any]] = {
        officer: {"subject": "officer-bench", "role": "officer"},
        finance: {"subject": "finance-bench", "role": "service"},
    }
    reviewers = {reviewer_id: token() for reviewer_id in reviewer_ids}
    entries |= {t: {"subject": reviewer_id, "role": "reviewer"} for reviewer_id, t in reviewers.items()}
    organisations = [o for app in apps for o in (app.visitor.organisation_id, app.host.organisation_id)]
    party_service: dict[str, str] = {}
    for n, first in enumerate(range(0, len(organisations), MAX_PARTIES_PER_TOKEN)):
        chunk = organisations[first : first + MAX_PARTIES_PER_TOKEN]
        service = token()
        entries[service] = {
            "subject": f"partnership-crm-{n}",
            "role": "service",
            "organisations": chunk,
            "partnerships": list(partnership_ids),
        }
        party_service |= dict.fromkeys(chunk, service)
    return ApiTokens(officer, finance, reviewers, party_service, json.dumps(entries))


@dataclass
class ApiActors:
    """bench/drivers.py's `ExchangeActions` over HTTP, each request to the next API process in turn."""

    base_urls: Sequence[str]
    tokens: ApiTokens
    apps: Mapping[str, ApplicationInput]  # application id -> application: whose party service acts
    requests_by_api: Counter[str] = field(default_factory=Counter)
    transient_retries: int = 0
    _http: httpx.AsyncClient = field(init=False)
    _turn: itertools.cycle[str] = field(init=False)

    def __post_init__(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self._http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits)
        self._turn = itertools.cycle(self.base_urls)

    async def close(self) -> None:
        await self._http.aclose()

    async def start_exchange(self, application: ApplicationInput) -> object:
        body = application.model_dump(mode="json", exclude_none=True)
        return await self._send("/exchanges", self.tokens.officer, json_body=body)

    async def decide(self, application_id: str, update: str, payload: Mapping[str, Any]) -> object:
        if update == "submit_review":
            token = self.tokens.for_reviewer(str(payload["actor_id"]))
        else:
            token = self._party_service(application_id)
        return await self._send(f"/exchanges/{application_id}/updates/{update}", token, json_body=dict(payload))

    async def confirm_payment(self, application_id: str, confirmation: Mapping[str, Any]) -> None:
        path = f"/exchanges/{application_id}/signals/confirm_payment"
        await self._send(path, self.tokens.finance, json_body=dict(confirmation))

    async def upload(self, application_id: str) -> dict[str, Any]:
        """The traveller's boarding pass, uploaded by the visitor's partnership service (multipart)."""
        content = await asyncio.to_thread(boarding_pass, application_id)
        form = {"kind": "boarding_pass", "name": "boarding-pass.pdf", "uploaded_by": "visitor-traveller"}
        files = {"file": ("boarding-pass.pdf", content, "application/pdf")}
        token = self._party_service(application_id)
        item = await self._send(f"/exchanges/{application_id}/evidence", token, form=form, files=files)
        if not isinstance(item, dict):
            raise ApiRequestFailed(f"{application_id}: the upload answered {item!r}, not an evidence item")
        return item

    def _party_service(self, application_id: str) -> str:
        app = self.apps[application_id]
        return self.tokens.party_service[app.visitor.organisation_id]

    async def _send(
        self,
        path: str,
        token: str,
        *,
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> object:
        """POST once as far as the engine is concerned: one Idempotency-Key for every send of this request."""
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        last = "no attempt"
        for _ in range(TRANSIENT_ATTEMPTS):
            base = next(self._turn)
            self.requests_by_api[base] += 1
            try:
                response = await self._http.post(base + path, headers=headers, json=json_body, data=form, files=files)
            except httpx.TransportError as error:
                last = f"{base}: {type(error).__name__} {error}"
            else:
                if response.status_code < 300:
                    return response.json() if response.content else None
                last = f"{base}: {response.status_code} {response.text[:500]}"
                if not _transient(response):
                    raise _refusal(path, response)
            self.transient_retries += 1
            await asyncio.sleep(TRANSIENT_PAUSE_S)
        raise ApiRequestFailed(f"POST {path}: no answer after {TRANSIENT_ATTEMPTS} sends; last {last}")


def _transient(response: httpx.Response) -> bool:
    """Worth the same request again: the engine timed out or was unreachable, or this key is still in flight."""
    in_flight = (
        response.status_code == 409 and "retry-after" in response.headers and not _problem(response).get("refusal")
    )
    return response.status_code in TRANSIENT_STATUSES or in_flight


def _refusal(path: str, response: httpx.Response) -> Exception:
    """A workflow's refusal as the Temporal client raises it (so the recorder retries "not yet"), else a failure."""
    problem = _problem(response)
    refusal = problem.get("refusal")
    if response.status_code in (409, 422) and isinstance(refusal, str):
        return DecisionRefused(str(problem.get("detail", refusal)), refusal)
    return ApiRequestFailed(f"POST {path}: {response.status_code} {response.text[:1000]}")


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
