"""The codec server: the Temporal UI and CLI decode the engine's encrypted payloads here (issue 16, item 1).

Every payload the engine writes to Temporal is AES-256-GCM ciphertext (schemas/codec.py), so the Web UI and
`temporal workflow show` display `binary/encrypted` blobs. People who may read histories point them at this
endpoint, which speaks Temporal's remote codec protocol:

- `POST /codec/decode` and `POST /codec/encode`, body and answer `{"payloads": [{"metadata": {...}, "data":
  "..."}]}` (the protobuf JSON form of `temporal.api.common.v1.Payloads`: metadata values and data base64),
  with the namespace in the `X-Namespace` header;
- `temporal workflow show --codec-endpoint https://api.example.org/codec --codec-auth "Bearer <token>"`,
  or the UI server's `TEMPORAL_CODEC_ENDPOINT` (docs/operations.md, "Payload encryption and the codec server").

The codec is the API's own Temporal client's (`api.exchanges.temporal.data_converter.payload_codec`), so the
endpoint decrypts with exactly the keys the process encrypts with. Who may call it is the `usePayloadCodec`
row of clients/api/access.py: officers and ops, with the API's bearer tokens. A browser may call it only from
the Temporal UI's origin (CX_CODEC_CORS_ORIGIN, `CodecCors`). The routes are not in the OpenAPI document:
their body is Temporal's protocol, not the engine's contract. Answers are never cached (`no-store`): a
decoded payload holds personal data.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Header, Request, Response
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from clients.api.context import Api, Engine, Permit, permitted
from clients.api.problems import ProblemError, invalid
from schemas.codec import PayloadDecryptionError

CODEC_PREFIX = "/codec"
CODEC_OPERATION = "usePayloadCodec"  # its row in clients/api/access.py
# A limit on everything: the UI decodes one history event's payloads per call, a handful; a page of events
# at most a few hundred. The body itself is bounded by CX_API_MAX_BODY_BYTES (clients/api/body.py).
MAX_PAYLOADS = 1000
# What the Temporal UI sends with each call (besides Content-Type): its namespace and the bearer token.
CORS_HEADERS = ("Authorization", "Content-Type", "X-Namespace")
CORS_MAX_AGE_S = 600
PROTOCOL_SHAPE = '{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}'

logger = logging.getLogger(__name__)
router = APIRouter(prefix=CODEC_PREFIX, tags=["codec"], include_in_schema=False)
Direction = Literal["decode", "encode"]


@router.post("/decode")
async def decode(
    request: Request,
    api: Engine,
    permit: Annotated[Permit, permitted(CODEC_OPERATION)],
    namespace: Annotated[str | None, Header(alias="X-Namespace")] = None,
) -> Response:
    """The payloads decrypted; a payload that is not encrypted (a plaintext history) comes back as it was."""
    return await _apply(request, api, permit, namespace, "decode")


@router.post("/encode")
async def encode(
    request: Request,
    api: Engine,
    permit: Annotated[Permit, permitted(CODEC_OPERATION)],
    namespace: Annotated[str | None, Header(alias="X-Namespace")] = None,
) -> Response:
    """The payloads encrypted with the current key (what the UI and CLI send as a signal's or a start's input)."""
    return await _apply(request, api, permit, namespace, "encode")


async def _apply(request: Request, api: Api, permit: Permit, namespace: str | None, direction: Direction) -> Response:
    served = api.exchanges.temporal.namespace
    if namespace is not None and namespace != served:
        raise ProblemError(
            403, "Forbidden", f"this codec serves namespace {served!r}", [("X-Namespace", f"must be {served!r}")]
        )
    payloads = _parse(await request.body())
    codec = api.exchanges.temporal.data_converter.payload_codec
    try:
        if codec is None:  # no keys (CX_PAYLOAD_KEYS unset): the engine writes plaintext, the codec is the identity
            coded = payloads
        elif direction == "decode":
            coded = await codec.decode(payloads)
        else:
            coded = await codec.encode(payloads)
    except PayloadDecryptionError as error:
        raise invalid([("payloads", str(error))]) from None
    # Who read what, for the audit: the principal and how many payloads, never their content.
    logger.info("codec %s: %d payloads for %s (%s)", direction, len(payloads), permit.who.subject, permit.who.role)
    body = json_format.MessageToJson(Payloads(payloads=coded), indent=None)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _parse(raw: bytes) -> list[Payload]:
    """The body as Temporal's JSON `Payloads`, or a 422 problem saying what is wrong with it."""
    try:
        parsed = json_format.Parse(raw, Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise invalid([("payloads", f"must be {PROTOCOL_SHAPE}: {error}")]) from None
    if len(parsed.payloads) > MAX_PAYLOADS:
        raise invalid([("payloads", f"at most {MAX_PAYLOADS} payloads per call")])
    return list(parsed.payloads)


def serve_codec(app: FastAPI, cors_origin: str | None) -> None:
    """Add the codec routes to `app`, with their CORS outside every middleware added so far (the token check).

    Temporal's remote codec protocol, not the engine's contract: served, but not in the OpenAPI document.
    """
    app.include_router(router)
    app.add_middleware(CodecCors, origin=cors_origin)


class CodecCors:
    """CORS for the codec routes only, and only for the configured Temporal UI origin (CX_CODEC_CORS_ORIGIN).

    Added outside the token check, so a browser's preflight (OPTIONS, which carries no token) is answered here;
    the UI then sends `Authorization` with credentials. Every other path, and every other origin, gets no CORS
    header at all: the browser keeps other sites' scripts from reading a decoded history.
    """

    def __init__(self, app: ASGIApp, origin: str | None) -> None:
        self.app = app
        self.cors: ASGIApp | None = None
        if origin is not None:
            self.cors = CORSMiddleware(
                app,
                allow_origins=[origin],
                allow_methods=["POST"],
                allow_headers=list(CORS_HEADERS),
                allow_credentials=True,
                max_age=CORS_MAX_AGE_S,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and scope["type"] == "http" and scope["path"].startswith(CODEC_PREFIX + "/"):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)
