"""Reaching Postgres: the process's pool, or one connection, waiting for the server with backoff.

**Waiting.** `cx worker`, `cx dispatcher` and `cx api` start in containers and on hosts where Postgres and
Temporal may come up later than they do (a deploy, a reboot, a failover). Instead of exiting at the first
refused connection, `wait_for` tries again with exponential backoff (capped, with jitter so that a fleet of
workers does not knock in step), logs one line per failed attempt, and gives up only after the limit
(`CX_CONNECT_TIMEOUT_S`) with `ServerUnreachable`, which every command turns into the exit code UNAVAILABLE.
A one-shot command (`cx status`) passes a limit of 0: one attempt, then the same error (issue 10, item 8).
Temporal's connection waits the same way (workers/connect.py).

This is the database's door for every layer above the ledger, clients included: they open the pool here
and read and write through the ledger's functions on it (docs/adr/0014-one-way-imports.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

T = TypeVar("T")
log: structlog.stdlib.BoundLogger = structlog.get_logger(__name__)

# One attempt may not hang on a server that swallows packets: it is cut after this long and counts as failed.
ATTEMPT_TIMEOUT_S = 10.0
# One pool per process (asyncpg's advice) of at most this many connections; a worker sizes its pool to its
# activity slots instead (CX_WORKER_ACTIVITY_SLOTS, workers/settings.py).
POOL_MAX_SIZE = 10


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool's reset on release: nothing beyond the rollback of an open transaction, which asyncpg does first.

    asyncpg's default reset (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET ALL) is one more round trip
    on every release, a few percent of a worker's CPU (docs/performance.md). Our code never changes a
    pooled session's state: no LISTEN, no session-level SET, cursors only inside transactions, advisory
    locks transaction-scoped (the migrations' session lock is taken and released on its own connection).
    """
    del connection


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
    reason: Callable[[BaseException], str] | None = None,
) -> T:
    """Run `attempt` until it succeeds; retry transient failures with backoff until `timeout_s` has passed.

    A failure that is not transient (a refused login, a bad address) propagates at once: waiting would
    not fix it. `timeout_s` 0 means one attempt. `reason` words a failure for the log and the error (by
    default its message).
    """
    describe = reason or _reason
    backoff = backoff or Backoff()
    rng = rng or random.Random()  # noqa: S311 - jitter for the backoff, not a secret
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
            why = _timed_out() if isinstance(error, TimeoutError) else describe(error)
            remaining = deadline - loop.time()
            if remaining <= 0:
                waited = f" after {number} attempts in {loop.time() - started:.0f} s" if number > 1 else ""
                raise ServerUnreachable(f"cannot reach {server} at {address}{waited}: {why}") from None
            pause = min(backoff.delay_s(number, rng), remaining)
            log.warning(
                f"waiting for {server} at {address} (attempt {number}, next in {_seconds(pause)}): {why}",
                server=server,
                address=address,
                attempt=number,
                next_in_s=round(pause, 1),
                error=why,
            )
            await asyncio.sleep(pause)
        else:
            if number > 1:
                log.info(f"connected to {server} at {address} (attempt {number})", server=server, address=address)
            return result


def _timed_out() -> str:
    return f"no answer within {ATTEMPT_TIMEOUT_S:.0f} s"


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 1 else f"{value:.0f} s"


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


async def connect_postgres_pool(
    database_url: str, *, timeout_s: float, max_size: int = POOL_MAX_SIZE, backoff: Backoff | None = None
) -> asyncpg.Pool:
    """The process's asyncpg pool (one per process, asyncpg's advice), waiting up to timeout_s for Postgres."""

    async def attempt() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            database_url, min_size=1, max_size=max_size, timeout=ATTEMPT_TIMEOUT_S, reset=keep_session
        )

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
    database_url: str, *, timeout_s: float, max_size: int = POOL_MAX_SIZE
) -> AsyncIterator[asyncpg.Pool]:
    """`connect_postgres_pool` as a block: the pool is closed when it ends."""
    pool = await connect_postgres_pool(database_url, timeout_s=timeout_s, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


def redact_dsn(dsn: str) -> str:
    """The database's address without its password, fit for a log line or an error message."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable DATABASE_URL>"
