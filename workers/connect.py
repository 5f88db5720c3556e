"""Process start-up: the one Temporal runtime of a process, and connections that wait for their server.

**Waiting.** `cx worker`, `cx dispatcher` and `cx api` start in containers and on hosts where Temporal
and Postgres may come up later than they do (a deploy, a reboot, a failover). Instead of exiting at the
first refused connection, `connect_temporal` and `connect_postgres_pool` try again with exponential
backoff (capped, with jitter so that a fleet of workers does not knock in step), log one line per failed
attempt, and give up only after `CX_CONNECT_TIMEOUT_S` (Settings.connect_timeout_s) with
`ServerUnreachable`, which every command turns into the exit code UNAVAILABLE (clients/exit_codes.py).
A one-shot command (`cx status`) passes a limit of 0: one attempt, then the same error (issue 10, item 8).

**The runtime.** The Temporal SDK runs its Rust core on a Tokio thread pool owned by a `Runtime`. When
that runtime is still alive as the interpreter finalizes, its threads can touch the dying interpreter,
and about one short-lived `cx` run in eight aborted with `Fatal Python error: PyGILState_Release`
(temporalio/sdk-python#300; issue 10, item 2). The SDK maintainers trace it to Tokio's clean-up rather
than to open clients, so closing a client cannot fix it. What does is to own the runtime instead of the
SDK's global default: each process gets one (`temporal_runtime`), passes it to every client and test
environment it connects, and drops it with `release_temporal_runtime` once its event loop has finished,
while the interpreter is still whole. The Tokio threads are then joined in an orderly way and none is
left for finalization.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from schemas.converter import DATA_CONVERTER
from workers.logging import get_logger
from workers.metrics import runtime_with_metrics

T = TypeVar("T")
log = get_logger(__name__)

# One attempt may not hang on a server that swallows packets: it is cut after this long and counts as failed.
ATTEMPT_TIMEOUT_S = 10.0
_POOL_MAX_SIZE = 10
# The SDK reports every failure to connect as a RuntimeError with this prefix (no narrower type exists).
_TEMPORAL_CONNECT_FAILED = "Failed client connect"


class ServerUnreachable(Exception):
    """A server did not answer within the connect limit; the message says which, where, and the last error."""


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: first_s, doubling, never above max_s, each spread by +-jitter (a fraction)."""

    first_s: float = 1.0
    max_s: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError("backoff: 0 < first_s <= max_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff: jitter is a fraction in [0, 1)")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        base: float = min(self.max_s, self.first_s * 2.0 ** min(attempt - 1, 30))
        spread: float = rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_s, base * spread)


# The process's Temporal runtime (see the module docstring). Module state on purpose: it is per process,
# exactly like the SDK's own default runtime that it replaces.
_runtime: Runtime | None = None


def temporal_runtime(metrics_address: str | None = None) -> Runtime:
    """The process's one Temporal runtime, created on first use (serving Prometheus metrics if asked)."""
    global _runtime
    if _runtime is None:
        _runtime = runtime_with_metrics(metrics_address) if metrics_address else Runtime(telemetry=TelemetryConfig())
    return _runtime


def release_temporal_runtime() -> None:
    """Drop the process's runtime and every client still pointing at it, now, rather than at interpreter exit.

    Call it after the event loop has finished and outside any `except` block (a live exception keeps its
    frames, and the clients in them, alive). The SDK's client objects sit in reference cycles, so only a
    collection frees them; the runtime's threads end with the last reference.
    """
    global _runtime
    _runtime = None
    gc.collect()


def postgres_address(database_url: str) -> str:
    """host:port/database of a DATABASE_URL, without user or password, fit for a log line or an error."""
    try:
        parts = urlsplit(database_url)
        host = parts.hostname or "localhost"
        return f"{host}:{parts.port or 5432}{parts.path or ''}"
    except ValueError:
        return "<unparseable DATABASE_URL>"


async def wait_for(
    server: str,
    address: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[BaseException], bool],
    timeout_s: float,
    backoff: Backoff | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run `attempt` until it succeeds; retry transient failures with backoff until `timeout_s` has passed.

    A failure that is not transient (a refused login, a bad address) propagates at once: waiting would
    not fix it. `timeout_s` 0 means one attempt.
    """
    backoff = backoff or Backoff()
    rng = rng or random.Random()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout_s
    number = 0
    while True:
        number += 1
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                result = await attempt()
        except Exception as error:
            if not (isinstance(error, TimeoutError) or transient(error)):
                raise
            reason = _reason(error)
            remaining = deadline - loop.time()
            if remaining <= 0:
                waited = f" after {number} attempts in {loop.time() - started:.0f} s" if number > 1 else ""
                raise ServerUnreachable(f"cannot reach {server} at {address}{waited}: {reason}") from None
            pause = min(backoff.delay_s(number, rng), remaining)
            log.warning(
                f"waiting for {server} at {address} (attempt {number}, next in {_seconds(pause)}): {reason}",
                server=server,
                address=address,
                attempt=number,
                next_in_s=round(pause, 1),
                error=reason,
            )
            await asyncio.sleep(pause)
        else:
            if number > 1:
                log.info(f"connected to {server} at {address} (attempt {number})", server=server, address=address)
            return result


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {ATTEMPT_TIMEOUT_S:.0f} s"
    text = str(error).removeprefix(f"{_TEMPORAL_CONNECT_FAILED}: ")
    return text or type(error).__name__


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 1 else f"{value:.0f} s"


def _temporal_transient(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and str(error).startswith(_TEMPORAL_CONNECT_FAILED)


def _postgres_transient(error: BaseException) -> bool:
    # Down, unreachable, starting up, shutting down or full: all pass with time. A refused login, a
    # missing database or a malformed URL do not, and end the wait at once.
    return isinstance(
        error,
        OSError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    )


def check_temporal_address(address: str) -> None:
    """Refuse a TEMPORAL_ADDRESS that is not host:port before waiting on it for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"TEMPORAL_ADDRESS={address!r}: must be host:port, e.g. temporal:7233")


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    timeout_s: float,
    runtime: Runtime | None = None,
    backoff: Backoff | None = None,
) -> Client:
    """A Temporal client with the engine's data converter on the process's runtime, waiting up to timeout_s."""
    check_temporal_address(address)
    chosen = runtime or temporal_runtime()

    async def attempt() -> Client:
        return await Client.connect(address, namespace=namespace, data_converter=DATA_CONVERTER, runtime=chosen)

    return await wait_for(
        "Temporal", address, attempt, transient=_temporal_transient, timeout_s=timeout_s, backoff=backoff
    )


async def connect_postgres_pool(
    database_url: str, *, timeout_s: float, max_size: int = _POOL_MAX_SIZE, backoff: Backoff | None = None
) -> asyncpg.Pool:
    """The process's asyncpg pool (one per process, asyncpg's advice), waiting up to timeout_s for Postgres."""

    async def attempt() -> asyncpg.Pool:
        return await asyncpg.create_pool(database_url, min_size=1, max_size=max_size, timeout=ATTEMPT_TIMEOUT_S)

    return await wait_for(
        "Postgres",
        postgres_address(database_url),
        attempt,
        transient=_postgres_transient,
        timeout_s=timeout_s,
        backoff=backoff,
    )


async def connect_postgres(database_url: str, *, timeout_s: float) -> asyncpg.Connection:
    """One connection (a one-shot command's), waiting up to timeout_s for Postgres like the pool does."""

    async def attempt() -> asyncpg.Connection:
        return await asyncpg.connect(database_url, timeout=ATTEMPT_TIMEOUT_S)

    return await wait_for(
        "Postgres",
        postgres_address(database_url),
        attempt,
        transient=_postgres_transient,
        timeout_s=timeout_s,
    )


@contextlib.asynccontextmanager
async def postgres_pool(
    database_url: str, *, timeout_s: float, max_size: int = _POOL_MAX_SIZE
) -> AsyncIterator[asyncpg.Pool]:
    """`connect_postgres_pool` as a block: the pool is closed when it ends."""
    pool = await connect_postgres_pool(database_url, timeout_s=timeout_s, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None as soon as `stop` is set (SIGTERM while a process still waits for a server)."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if working.done():
        return working.result()
    working.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await working
    return None
