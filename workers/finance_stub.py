"""DEMO MODE: a local stand-in for finance's payment-order endpoint, for `make run` only.

It listens on 127.0.0.1 (a free port), verifies each webhook the way finance must (docs/contract.md,
"Outbox messages"): the Standard Webhooks signature, a timestamp within the replay window (5 minutes
either way), and the webhook-id deduplicated, so a redelivery is acknowledged but recorded once. It
remembers which payment orders arrived, so the demo's "finance" confirms a payment only after its order
really came through the outbox and the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

from workers.logging import get_logger
from workers.webhook_signing import DEFAULT_TOLERANCE_S, WebhookVerificationError, signing_key, verify

log = get_logger(__name__)
_MAX_BODY_BYTES = 64 * 1024


class FinanceStub:
    def __init__(
        self,
        webhook_secret: str,
        *,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = signing_key(webhook_secret)
        self._tolerance_s = tolerance_s
        self._clock = clock
        self._server: asyncio.Server | None = None
        self.received: dict[str, dict[str, object]] = {}  # application id -> payment order
        # webhook-ids already taken: a redelivery (at-least-once) answers 200 and changes nothing.
        self.seen_webhook_ids: set[str] = set()
        self.duplicates = 0
        self.refused: list[str] = []  # why each refused webhook was refused

    @property
    def url(self) -> str:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/payment-orders"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status = "400 Bad Request"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:])
                if name
            }
            length = int(headers.get("content-length", "0"))
            if 0 < length <= _MAX_BODY_BYTES:
                body = await asyncio.wait_for(reader.readexactly(length), timeout=5)
                status = self._accept(headers, body)
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError, TypeError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    def _accept(self, headers: dict[str, str], body: bytes) -> str:
        """Verify one webhook, then record its payment order once; the HTTP status line to answer."""
        try:
            webhook_id = verify(self._key, headers, body, now=self._clock(), tolerance_s=self._tolerance_s)
        except WebhookVerificationError as error:
            self.refused.append(str(error))
            log.warning("finance stub: webhook refused", reason=str(error), webhook_id=headers.get("webhook-id"))
            return "401 Unauthorized"
        if webhook_id in self.seen_webhook_ids:
            self.duplicates += 1
            return "200 OK"
        order = json.loads(body)["payload"]  # the dispatcher's envelope: dedup_key, topic, payload
        self.received[str(order["application_id"])] = order
        self.seen_webhook_ids.add(webhook_id)
        return "200 OK"
