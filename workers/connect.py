"""Process start-up: the one Temporal runtime of a process, and a Temporal client that waits for its server.

**Waiting.** Like Postgres (ledger/pool.py, whose `wait_for` this uses), Temporal may come up later than
`cx worker`, `cx dispatcher` or `cx api`: `connect_temporal` tries again with backoff until
`CX_CONNECT_TIMEOUT_S` (Settings.connect_timeout_s), then raises `ServerUnreachable` (exit UNAVAILABLE). A
one-shot command passes a limit of 0: one attempt, then the same error (issue 10, item 8).

**The runtime.** The Temporal SDK runs its Rust core on a Tokio thread pool owned by a `Runtime`. When
that runtime is still alive as the interpreter finalizes, its threads can touch the dying interpreter,
and about one short-lived `cx` run in eight aborted with `Fatal Python error: PyGILState_Release`
(temporalio/sdk-python#300; issue 10, item 2). The SDK maintainers trace it to Tokio's clean-up rather
than to open clients, so closing a client cannot fix it. What does is to own the runtime instead of the
SDK's global default: each process gets one (`temporal_runtime`), passes it to every client and test
environment it connects, and drops it with `release_temporal_runtime` once its event loop has finished,
while the interpreter is still whole (workers/cli.py does, around every command). The Tokio threads are
then joined in an orderly way and none is left for finalization.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from ledger.pool import Backoff, wait_for
from workers.metrics import runtime_with_metrics
from workers.temporal_config import TemporalConnection

T = TypeVar("T")
# The SDK reports every failure to connect as a RuntimeError with this prefix (no narrower type exists).
TEMPORAL_CONNECT_FAILED = "Failed client connect"


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


def _temporal_transient(error: BaseException) -> bool:
    return isinstance(error, RuntimeError) and str(error).startswith(TEMPORAL_CONNECT_FAILED)


def _temporal_reason(error: BaseException) -> str:
    # The SDK's prefix says nothing the line does not already say ("cannot reach Temporal at ...").
    return str(error).removeprefix(f"{TEMPORAL_CONNECT_FAILED}: ") or type(error).__name__


async def connect_temporal(
    connection: TemporalConnection,
    *,
    timeout_s: float,
    runtime: Runtime | None = None,
    backoff: Backoff | None = None,
) -> Client:
    """A Temporal client with the connection's data converter on the process's runtime, waiting up to timeout_s.

    `connection` comes from temporalio.envconfig (workers/temporal_config.py): address, namespace, TLS or
    mTLS, API key and gRPC headers, as the SDKs and the `temporal` CLI read them.
    """
    address = connection.address
    assert address is not None, "resolve the address first (workers/runtime.py resolve_temporal_connection)"
    chosen = runtime or temporal_runtime()

    async def attempt() -> Client:
        return await Client.connect(
            address,
            namespace=connection.namespace,
            api_key=connection.api_key,
            tls=connection.tls or False,
            rpc_metadata=dict(connection.rpc_metadata),
            data_converter=connection.data_converter,
            runtime=chosen,
        )

    return await wait_for(
        "Temporal",
        address,
        attempt,
        transient=_temporal_transient,
        timeout_s=timeout_s,
        backoff=backoff,
        reason=_temporal_reason,
    )


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
