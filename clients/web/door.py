"""The web app reaches the engine through the REST API's own door, in process.

Every page reads, and every form acts, by calling the API app with the signed-in principal's bearer token
over an in-process ASGI transport: the same routes, the same strict bodies, the same role table
(clients/api/access.py), the same need-to-know views and the same Idempotency-Key handling as any other
client. So a page can never show or do what the API would refuse that principal (docs/adr/0016-web-app.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp

# Never resolved: the transport hands the request straight to the app in this process.
INTERNAL_BASE_URL = "http://cx-api.internal"


@dataclass(frozen=True)
class Refused:
    """An API refusal, as a form shows it: the problem's title and detail, and each field named with its rule."""

    status: int
    title: str
    detail: str
    errors: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, response: httpx.Response) -> Refused:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        errors = [
            (str(e.get("field", "")), str(e.get("message", "")))
            for e in body.get("errors", []) or []
            if isinstance(e, dict)
        ]
        return cls(
            status=response.status_code,
            title=str(body.get("title", "Refused")),
            detail=str(body.get("detail", response.reason_phrase)),
            errors=errors,
        )


class RefusedError(Exception):
    """Raised by `Door` for an answer that is not a success; the page shows `refused`."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(f"{refused.status} {refused.title}: {refused.detail}")
        self.refused = refused


class Door:
    """The API, called as `token`'s principal. One per request; cheap (the transport is shared)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, token: str) -> None:
        self._transport = transport
        self._headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a GET; RefusedError for anything but 2xx."""
        async with self._client() as client:
            response = await client.get(path, params={k: v for k, v in (params or {}).items() if v is not None})
        return _answer(response)

    async def post(self, path: str, body: dict[str, Any] | None = None, *, idempotency_key: str | None = None) -> Any:
        """POST a JSON body with an Idempotency-Key (the form's own, so a double submit is applied once)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        async with self._client() as client:
            response = await client.post(path, json=body if body is not None else {}, headers=headers)
        return _answer(response)

    async def upload(
        self,
        path: str,
        files: dict[str, tuple[str, bytes, str]],
        *,
        idempotency_key: str,
        data: dict[str, str] | None = None,
    ) -> Any:
        """POST multipart/form-data (evidence: the file and its text fields), with an Idempotency-Key."""
        async with self._client() as client:
            response = await client.post(
                path, files=files, data=data or {}, headers={"Idempotency-Key": idempotency_key}
            )
        return _answer(response)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport, base_url=INTERNAL_BASE_URL, headers=self._headers)


def transport_to(app: ASGIApp) -> httpx.AsyncBaseTransport:
    """An in-process transport to the API app (no socket, no port)."""
    return httpx.ASGITransport(app=app)


def _answer(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    raise RefusedError(Refused.of(response))
