"""A hold whose reply is lost after the commit: the retry with the same key returns the original transfer.

The test puts a small TCP proxy between asyncpg and Postgres that speaks just enough of the Postgres
wire protocol to know where messages start. Armed, it forwards the server's messages until the hold's
execution begins (BindComplete), then holds back everything: the hold's DataRow and CommandComplete
(or PortalSuspended, as fetchrow asks for one row), and the ReadyForQuery that Postgres sends only
after the transaction has committed. On that ReadyForQuery, whose status "idle" proves the commit, it
closes both sockets without forwarding a byte. The client sees its connection die mid-call, exactly
like a network failure after COMMIT and before the reply, while the server has the hold; the
activity's retry must then book nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from ledger.store import LedgerStore
from schemas.ledger import Transfer
from tests.ledger.conftest import Ids, balance

_MAX_WAIT_S = 30.0


class CommitThenCutProxy:
    """Forwards TCP to Postgres; when armed, swallows the next statement's reply and cuts after commit."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._armed = False
        self.cut = asyncio.Event()
        self.status_at_cut: bytes | None = None  # b"I": idle, the transaction committed
        self.swallowed: list[bytes] = []  # message types held back from the client

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def arm(self) -> None:
        self._armed = True

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        writers = (client_writer, upstream_writer)
        to_server = asyncio.create_task(self._pump(client_reader, upstream_writer))
        try:
            await self._pump_replies(upstream_reader, client_writer, writers)
        finally:
            to_server.cancel()
            await asyncio.gather(to_server, return_exceptions=True)
            for writer in writers:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    async def _pump_replies(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        writers: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        buffered = b""
        holding_back = False
        seen_complete = False
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if not self._armed:
                    client.write(data)
                    await client.drain()
                    continue
                # Armed only between statements, so the stream is at a message boundary:
                # type byte, int32 length (counting itself), body.
                buffered += data
                while len(buffered) >= 5:
                    length = int.from_bytes(buffered[1:5], "big")
                    if len(buffered) < 1 + length:
                        break
                    message, buffered = buffered[: 1 + length], buffered[1 + length :]
                    kind = message[:1]
                    if kind == b"2":  # BindComplete: the statement's execution starts here
                        holding_back = True
                    if not holding_back:
                        client.write(message)  # e.g. the reply to asyncpg's Parse/Describe
                        continue
                    self.swallowed.append(kind)
                    if kind in (b"C", b"s"):  # CommandComplete, or PortalSuspended (fetchrow's row limit)
                        seen_complete = True
                    elif kind == b"Z" and seen_complete:  # ReadyForQuery: sent after the commit
                        self.status_at_cut = message[5:6]
                        for writer in writers:
                            writer.transport.abort()
                        self.cut.set()
                        return
                await client.drain()


@pytest_asyncio.fixture
async def proxy(database_url: str) -> AsyncIterator[tuple[CommitThenCutProxy, str]]:
    parts = urlsplit(database_url)
    server = CommitThenCutProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await server.start()
    auth = ""
    if parts.username:
        auth = parts.username + (f":{parts.password}" if parts.password else "") + "@"
    netloc = f"{auth}127.0.0.1:{server.port}"
    try:
        yield server, urlunsplit(parts._replace(netloc=netloc))
    finally:
        await server.close()


async def test_retry_after_a_reply_lost_past_commit_returns_the_original(
    proxy: tuple[CommitThenCutProxy, str], store: LedgerStore, ids: Ids, pg_pool: asyncpg.Pool
) -> None:
    """The hold commits, its reply is lost with the connection; the retry with the same key replays it."""
    cutter, proxied_dsn = proxy
    partnership = ids.partnership()
    await store.allocate(idempotency_key=ids.key(), partnership_id=partnership, amount_cents=5_000_00)
    key = ids.key("hold")

    async def hold(store_: LedgerStore, conn: asyncpg.pool.PoolConnectionProxy | None = None) -> Transfer:
        return await store_.hold(
            idempotency_key=key,
            partnership_id=partnership,
            application_id=ids.exchange(),
            amount_cents=1_100_00,
            conn=conn,
        )

    # ssl=False: the proxy must see the protocol in clear text.
    doomed_pool = await asyncpg.create_pool(proxied_dsn, min_size=1, max_size=1, ssl=False)
    try:
        async with doomed_pool.acquire() as conn:
            await conn.fetchval("SELECT 1")  # connected and idle: a message boundary
            cutter.arm()
            with pytest.raises((asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)):
                await asyncio.wait_for(hold(LedgerStore(doomed_pool), conn), _MAX_WAIT_S)
    finally:
        doomed_pool.terminate()

    assert cutter.cut.is_set(), "the cut must come after a committed transaction"
    assert cutter.status_at_cut == b"I", "the cut must come after a committed transaction"
    assert cutter.swallowed[0] == b"2", cutter.swallowed
    assert cutter.swallowed[-1] == b"Z", cutter.swallowed
    booked = await pg_pool.fetch("SELECT id FROM ledger_transfers WHERE idempotency_key = $1", key)
    assert len(booked) == 1, "the server committed the hold the client never heard about"

    retried = await hold(store)  # what Temporal does when the activity attempt fails
    assert retried.replayed
    assert retried.id == booked[0]["id"]
    assert await pg_pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE idempotency_key = $1", key) == 1
    assert await balance(store, partnership) == (5_000_00, 1_100_00, 0, 3_900_00)
