"""The codec server (issue 16, item 1): Temporal's remote codec protocol, for officers and ops only, CORS for the UI.

The protocol as the Temporal UI and CLI speak it: `POST /codec/decode|encode` with `{"payloads": [...]}` in
protobuf JSON (metadata values and data in base64) and the namespace in `X-Namespace`. The codec is the API's
own Temporal client's, here the suite's test key (tests/payload_keys.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from clients.api import create_app
from clients.client import ExchangeClient
from schemas.codec import PayloadKeys
from schemas.converter import data_converter
from tests.api.helpers import APPLICANT, OFFICER, OPS, PARTY_SERVICE, SERVICE, auth, reviewer_token, token_table
from tests.codec_server import UI_ORIGIN


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


PLAIN = {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'"Ola"')}
ENCRYPTED = b64(b"binary/encrypted")


@pytest_asyncio.fixture(loop_scope="session")
async def codec_api(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the session's stack (its codec: the suite's key), the Temporal UI's origin allowed."""
    app = create_app(dev_client, pg_pool, token_table(partnership), codec_cors_origin=UI_ORIGIN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def payloads(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["payloads"]
    return found


async def test_encode_then_decode_gives_back_the_payload_exactly(codec_api: httpx.AsyncClient) -> None:
    """An officer encodes a JSON payload (binary/encrypted under the current key id, no plaintext left) and
    decodes it back to the same metadata and data; a plaintext payload decodes unchanged."""
    [sealed] = payloads(await codec_api.post("/codec/encode", json={"payloads": [PLAIN]}, headers=auth(OFFICER)))
    assert sealed["metadata"]["encoding"] == ENCRYPTED
    assert base64.b64decode(sealed["metadata"]["encryption-key-id"]) == b"test-1"
    assert b"Ola" not in base64.b64decode(sealed["data"])
    decoded = await codec_api.post(
        "/codec/decode", json={"payloads": [sealed, PLAIN]}, headers=auth(OPS) | {"X-Namespace": "default"}
    )
    assert payloads(decoded) == [PLAIN, PLAIN]
    assert decoded.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("token", [SERVICE, PARTY_SERVICE, APPLICANT, reviewer_token("rev-a")])
async def test_only_officers_and_ops_may_use_the_codec(codec_api: httpx.AsyncClient, token: str) -> None:
    """Every other kind of principal is refused (403) on both routes, and no token is 401."""
    for route in ("/codec/decode", "/codec/encode"):
        refused = await codec_api.post(route, json={"payloads": [PLAIN]}, headers=auth(token))
        assert refused.status_code == 403, refused.text
        assert (await codec_api.post(route, json={"payloads": [PLAIN]})).status_code == 401


async def test_bad_requests_are_problems_naming_what_is_wrong(codec_api: httpx.AsyncClient) -> None:
    """Another namespace (403), a body that is not Payloads JSON (422), a payload under a key this API does not
    hold (422 naming the key id): each a problem document, never a 500."""
    other = await codec_api.post(
        "/codec/decode", json={"payloads": [PLAIN]}, headers=auth(OFFICER) | {"X-Namespace": "elsewhere"}
    )
    assert other.status_code == 403
    assert other.json()["errors"][0]["field"] == "X-Namespace"
    malformed = await codec_api.post("/codec/decode", content=b'{"payloads": 7}', headers=auth(OFFICER))
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "payloads"
    foreign = data_converter(PayloadKeys({"elsewhere-1": bytes(32)}, "elsewhere-1")).payload_codec
    assert foreign is not None
    [sealed] = await foreign.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"Ola"')])
    body = json.loads(json_format.MessageToJson(sealed))
    unknown = await codec_api.post("/codec/decode", json={"payloads": [body]}, headers=auth(OFFICER))
    assert unknown.status_code == 422
    assert "elsewhere-1" in unknown.json()["errors"][0]["message"]


async def test_the_temporal_ui_origin_and_only_it_may_call_from_a_browser(codec_api: httpx.AsyncClient) -> None:
    """A preflight from CX_CODEC_CORS_ORIGIN is answered (POST, Authorization with credentials, X-Namespace);
    another origin's is refused with no allow header; other routes get no CORS at all."""
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    allowed = await codec_api.options("/codec/decode", headers={"Origin": UI_ORIGIN, **preflight})
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert {"authorization", "x-namespace"} <= set(allowed.headers["access-control-allow-headers"].lower().split(", "))
    elsewhere = await codec_api.options("/codec/decode", headers={"Origin": "https://evil.example", **preflight})
    assert elsewhere.status_code == 400
    assert "access-control-allow-origin" not in elsewhere.headers
    decoded = await codec_api.post(
        "/codec/decode", json={"payloads": [PLAIN]}, headers=auth(OFFICER) | {"Origin": UI_ORIGIN}
    )
    assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
    other_route = await codec_api.options("/budgets", headers={"Origin": UI_ORIGIN, **preflight})
    assert "access-control-allow-origin" not in other_route.headers


async def test_the_codec_is_not_part_of_the_openapi_document(codec_api: httpx.AsyncClient) -> None:
    """Temporal's protocol, not the engine's contract: served, but no /codec path in /openapi.json."""
    document = (await codec_api.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/codec")]
