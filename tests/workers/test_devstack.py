"""The embedded Postgres starts on a free port, survives a restart with its data, and leaves no process behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg

from workers.devstack import EmbeddedPostgres


async def test_embedded_postgres_keeps_data_across_restarts_and_stops_cleanly(tmp_path: Path) -> None:
    """Data written before a stop is there after a start on the same directory; the process is gone after stop."""
    tmp_path.chmod(0o755)  # as root the server runs as its own OS user, which must reach the directory
    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = server.start()
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    await conn.close()
    pid = int((tmp_path / "pg" / "postmaster.pid").read_text().splitlines()[0])
    server.stop()
    assert not _alive(pid)

    again = EmbeddedPostgres(tmp_path / "pg")
    conn = await asyncpg.connect(again.start())
    try:
        assert await conn.fetchval("SELECT n FROM kept") == 42
    finally:
        await conn.close()
        again.stop()


async def test_a_server_left_behind_by_a_killed_parent_is_replaced(tmp_path: Path) -> None:
    """If a previous run died without stopping its Postgres, the next start stops that one and starts its own."""
    tmp_path.chmod(0o755)
    first = EmbeddedPostgres(tmp_path / "pg")
    first.start()
    orphan_pid = int((tmp_path / "pg" / "postmaster.pid").read_text().splitlines()[0])
    first._process = None  # forget it, as a killed parent would
    second = EmbeddedPostgres(tmp_path / "pg")
    try:
        conn = await asyncpg.connect(second.start())
        await conn.close()
        assert not _alive(orphan_pid)
    finally:
        second.stop()
        if _alive(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped or no longer "postgres".
    try:
        return "postgres" in Path(f"/proc/{pid}/cmdline").read_text() and "Z" not in _state(pid)
    except FileNotFoundError:
        return False


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split(" ", 1)[0]
