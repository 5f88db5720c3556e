"""DEMO MODE: a local stand-in for finance's payment-order endpoint, for `make run` only.

It listens on 127.0.0.1 (a free port), checks each webhook's HMAC signature the way finance must,
and remembers which payment orders arrived, so the demo's "finance" confirms a payment only after
its order really came through the outbox and the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json

from workers.dispatcher import webhook_signature
from workers.logging import get_logger

log = get_logger(__name__)
_MAX_BODY_BYTES = 64 * 1024


class FinanceStub:
    def __init__(self, webhook_secret: str) -> None:
        self._secret = webhook_secret
        self._server: asyncio.Server | None = None
        self.received: dict[str, dict[str, object]] = {}  # application id -> payment order

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
                expected = webhook_signature(self._secret, headers.get("x-cx-timestamp", ""), body)
                if hmac.compare_digest(expected, headers.get("x-cx-signature", "")):
                    order = json.loads(body)["payload"]  # the dispatcher's envelope: dedup_key, topic, payload
                    self.received[str(order["application_id"])] = order
                    status = "200 OK"
                else:
                    status = "401 Unauthorized"
                    log.warning("finance stub: bad signature", dedup_key=headers.get("x-cx-dedup-key"))
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError, TypeError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
