"""`cx worker`, `cx dispatcher` and `cx api` wait for Temporal and Postgres at start-up (issue 10, item 8).

Each process is started as a subprocess against a port where nothing listens yet. The test then opens
that port as a plain TCP relay to the session's real server, so the process meets a server that came up
late, exactly as it would after a deploy or a reboot, without restarting any server of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from temporalio.testing import WorkflowEnvironment

from clients.exit_codes import ExitCode
from ledger.pool import Backoff, postgres_address
from workers.devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
CX = [sys.executable, "-m", "workers.cli"]
WITHIN_S = 60.0


@contextlib.asynccontextmanager
async def relay(listen_port: int, target_host: str, target_port: int) -> AsyncIterator[None]:
    """Listen on 127.0.0.1:listen_port and pass every connection through to the target, both ways."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        for task in (
            asyncio.create_task(pipe(client_reader, server_writer)),
            asyncio.create_task(pipe(server_reader, client_writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


class Process:
    """A `cx` subprocess whose JSON log lines (stderr) are read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Process:
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
        environment |= {"CX_STATE_DIR": str(ROOT / ".cx-test-absent"), "CX_LOG_FORMAT": "json"} | env
        process = await asyncio.create_subprocess_exec(
            *CX, *args, cwd=ROOT, env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(process)

    async def wait_for_line(self, needle: str, count: int = 1) -> list[dict[str, Any]]:
        """Read stderr until `count` log lines contain `needle`; fail saying what was awaited."""
        assert self.process.stderr is not None
        found: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(WITHIN_S):
                while len(found) < count:
                    raw = await self.process.stderr.readline()
                    if not raw:
                        break
                    line = raw.decode().strip()
                    self.lines.append(line)
                    if needle in line:
                        found.append(json.loads(line) if line.startswith("{") else {"event": line})
        except TimeoutError:
            pass
        assert len(found) >= count, f"awaited {count} line(s) with {needle!r}; stderr so far: {self.lines}"
        return found

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WITHIN_S):
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            self.lines += stderr.decode().splitlines()
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def cx_process(*args: str, env: dict[str, str]) -> AsyncIterator[Process]:
    process = await Process.start(*args, env=env)
    try:
        yield process
    finally:
        await process.kill()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def test_a_worker_waits_for_temporal_then_connects_and_stops_cleanly(
    dev_server_env: WorkflowEnvironment, database_url: str
) -> None:
    """With nothing at TEMPORAL_ADDRESS the worker logs "waiting for Temporal ... (attempt n, next in s)" and
    stays up; once the port answers it connects and runs; SIGTERM then ends it with exit 0."""
    port = free_port()
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "DATABASE_URL": database_url,
        "CX_TASK_QUEUE": f"cx-connect-{random.randrange(1 << 30)}",
        "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/payment-orders",
    }
    async with cx_process("worker", env=env) as worker:
        waiting = await worker.wait_for_line(f"waiting for Temporal at 127.0.0.1:{port}", count=2)
        assert [line["attempt"] for line in waiting] == [1, 2]
        assert "(attempt 2, next in " in waiting[1]["event"]
        assert waiting[1]["level"] == "warning"
        assert worker.process.returncode is None, "the worker must wait, not exit"
        async with relay(port, *_host_port(dev_server_env.client.service_client.config.target_host)):
            await worker.wait_for_line(f"connected to Temporal at 127.0.0.1:{port}")
            await worker.wait_for_line("worker started")
            assert await worker.stop() == ExitCode.OK, worker.lines


async def test_a_dispatcher_waits_for_postgres_then_connects(database_url: str) -> None:
    """With nothing at DATABASE_URL's port the dispatcher logs "waiting for Postgres at host:port/db" (no
    password) and connects once the port answers."""
    parts = urlsplit(database_url)
    port = free_port()
    late_url = parts._replace(netloc=f"{parts.username}:s3cret@127.0.0.1:{port}").geturl()
    env = {"DATABASE_URL": late_url, "CX_WEBHOOK_SECRET": "test-secret"}
    async with cx_process("dispatcher", env=env) as dispatcher:
        (waiting,) = await dispatcher.wait_for_line(f"waiting for Postgres at {postgres_address(late_url)}")
        assert "s3cret" not in json.dumps(waiting)
        async with relay(port, parts.hostname or "127.0.0.1", parts.port or 5432):
            await dispatcher.wait_for_line("dispatcher started")
            assert await dispatcher.stop() == ExitCode.OK, dispatcher.lines


@pytest.mark.parametrize("command", ["worker", "api"])
async def test_after_the_limit_a_process_exits_unavailable_naming_the_server(command: str, database_url: str) -> None:
    """With CX_CONNECT_TIMEOUT_S=2 and Temporal never answering, `cx worker` and `cx api` end with exit code 5
    (UNAVAILABLE) and one error line naming the server, its address and the attempts."""
    port = free_port()
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "DATABASE_URL": database_url,
        "CX_CONNECT_TIMEOUT_S": "2",
        "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/payment-orders",
        "CX_API_TOKENS": json.dumps({"Zq8vR2mK7xWp4nTa9cLd3fHs6jYb1uEg": {"subject": "anna", "role": "officer"}}),
    }
    args = ["api", "--port", str(free_port())] if command == "api" else [command]
    async with cx_process(*args, env=env) as process:
        async with asyncio.timeout(WITHIN_S):
            code = await process.process.wait()
        assert process.process.stderr is not None
        lines = (await process.process.stderr.read()).decode().strip().splitlines()
    assert code == ExitCode.UNAVAILABLE, lines
    error = lines[-1]
    assert error.startswith("error: cannot reach Temporal at 127.0.0.1:"), lines
    assert " attempts in " in error, lines
    assert any("waiting for Temporal" in line for line in lines[:-1])


async def test_sigterm_while_waiting_ends_the_process_at_once(database_url: str) -> None:
    """A worker still waiting for Temporal stops on SIGTERM with exit 0 instead of waiting out its limit."""
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DATABASE_URL": database_url,
        "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/payment-orders",
    }
    async with cx_process("worker", env=env) as worker:
        await worker.wait_for_line("waiting for Temporal")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await worker.stop() == ExitCode.OK, worker.lines
        assert loop.time() - started < 10


def test_a_malformed_limit_or_address_is_a_usage_error() -> None:
    """CX_CONNECT_TIMEOUT_S that is not a number of seconds, and a TEMPORAL_ADDRESS that is not host:port, are
    refused in one line naming the variable, exit 2, before any wait."""
    import subprocess

    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    base |= {"CX_STATE_DIR": str(ROOT / ".cx-test-absent"), "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/"}
    for extra, named in (
        ({"CX_CONNECT_TIMEOUT_S": "soon", "TEMPORAL_ADDRESS": "127.0.0.1:1"}, "CX_CONNECT_TIMEOUT_S"),
        ({"CX_CONNECT_TIMEOUT_S": "inf", "TEMPORAL_ADDRESS": "127.0.0.1:1"}, "CX_CONNECT_TIMEOUT_S"),
        ({"TEMPORAL_ADDRESS": "temporal-without-port", "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}, "host:port"),
    ):
        result = subprocess.run(
            [*CX, "worker"], capture_output=True, text=True, cwd=ROOT, env=base | extra, timeout=WITHIN_S
        )
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert named in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    """Delays grow 1, 2, 4, ... s, never pass the cap, and stay within +-jitter of the nominal delay."""
    backoff = Backoff(first_s=1.0, max_s=30.0, jitter=0.2)
    rng = random.Random(7)
    for attempt, nominal in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0)):
        for _ in range(50):
            assert nominal * 0.8 <= backoff.delay_s(attempt, rng) <= nominal * 1.2
    assert all(backoff.delay_s(attempt, rng) <= 30.0 for attempt in range(6, 200))
    assert min(backoff.delay_s(40, rng) for _ in range(50)) >= 24.0
