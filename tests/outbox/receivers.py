"""Real local receivers and helpers shared by the outbox tests: an HTTP endpoint for webhooks (scripted
statuses, recorded requests), an aiosmtpd handler keeping messages, and the dispatcher as tests configure it."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from activities.outbox import enqueue, payment_order_dedup_key
from workers.dispatcher import Dispatcher, DispatcherConfig

SECRET = "test-secret-not-for-production"


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint that records every POST and answers with scripted statuses (then 200).

    A scripted answer is a status, or a status with response headers (e.g. 429 with Retry-After).
    Header names are recorded lower-case, as a receiver looks them up.
    """

    statuses: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def respond(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        time.sleep(self.delay_s)
        with self.lock:
            self.received.append((headers, body))
            answer = self.statuses.pop(0) if self.statuses else 200
        return answer if isinstance(answer, tuple) else (answer, {})

    def dedup_keys(self) -> list[str]:
        with self.lock:
            return [h["webhook-id"] for h, _ in self.received]


@contextmanager
def serving_webhooks() -> Iterator[WebhookReceiver]:
    """A WebhookReceiver listening on 127.0.0.1 (a free port) until the block ends."""
    state = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, extra_headers = state.respond({k.lower(): v for k, v in self.headers.items()}, body)
            try:
                self.send_response(status)
                for name, value in extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the dispatcher gave up waiting (the timeout test) and closed the connection

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/finance"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class RecordingHandler:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(content))
        return "250 Message accepted for delivery"


def dispatcher_config(**overrides: Any) -> DispatcherConfig:
    """The tests' configuration: no backoff between outbox attempts, short timeouts and in-delivery waits."""
    settings: dict[str, Any] = {
        "webhook_secret": SECRET,
        "base_backoff_s": 0.0,
        "timeout_s": 2.0,
        "retry_wait_initial_s": 0.01,
        **overrides,
    }
    return DispatcherConfig(**settings)


def make_dispatcher(pool: asyncpg.Pool, **overrides: Any) -> Dispatcher:
    return Dispatcher(pool, dispatcher_config(**overrides))


async def enqueue_webhook(pool: asyncpg.Pool, url: str, application_id: str) -> int:
    """A payment order for `application_id` to `url`, enqueued in its own transaction."""
    async with pool.acquire() as conn, conn.transaction():
        return await enqueue(
            conn,
            dedup_key=payment_order_dedup_key(application_id),
            topic="payment_order",
            channel="webhook",
            destination=url,
            payload={"application_id": application_id, "amount_cents": 45_000},
        )
