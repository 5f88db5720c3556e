"""The API's codec server on a real socket, for the `temporal` CLI (`--codec-endpoint`, issue 16, item 1).

The CLI is another process: it reaches the codec over HTTP, so the app is served by uvicorn on a free
127.0.0.1 port in the test's event loop (where the session's worker runs too; call the CLI from a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import uvicorn

from clients.api import Principal, create_app
from clients.client import ExchangeClient

CODEC_OFFICER = "tok-codec-officer-0000"
CODEC_REVIEWER = "tok-codec-reviewer-000"
CODEC_TOKENS = {
    CODEC_OFFICER: Principal(subject="officer-codec", role="officer"),
    CODEC_REVIEWER: Principal(subject="reviewer-codec", role="reviewer"),
}
UI_ORIGIN = "http://127.0.0.1:8233"
START_WITHIN_S = 10
STOP_WITHIN_S = 15


@dataclass(frozen=True)
class CodecEndpoint:
    url: str  # what `--codec-endpoint` takes: the CLI appends /decode and /encode

    def cli_args(self, token: str = CODEC_OFFICER) -> list[str]:
        return ["--codec-endpoint", self.url, "--codec-auth", f"Bearer {token}"]


class _Server(uvicorn.Server):
    """uvicorn that leaves the test process's signal handlers alone (pytest-timeout keeps its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_codec(client: ExchangeClient, pool: asyncpg.Pool) -> AsyncIterator[CodecEndpoint]:
    """The API app over the session's stack on a free port; its codec is the client's (the suite's test key)."""
    app = create_app(client, pool, CODEC_TOKENS, codec_cors_origin=UI_ORIGIN)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name=f"codec:{port}")
    try:
        async with asyncio.timeout(START_WITHIN_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise AssertionError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield CodecEndpoint(f"http://127.0.0.1:{port}/codec")
    finally:
        server.should_exit = True
        async with asyncio.timeout(STOP_WITHIN_S):
            await task
        listener.close()
