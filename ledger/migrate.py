"""Versioned SQL migrations, applied in file-name order and recorded in `schema_migrations`.

Each file runs in its own transaction together with its bookkeeping row, under an advisory lock, so
two processes starting at once (the worker and `cx db migrate`) apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x43580001  # "CX" + 1: an arbitrary, fixed advisory-lock id for migrations


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationChecksumMismatch(RuntimeError):
    """A migration already applied was edited afterwards: add a new migration instead."""


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(version=p.stem, path=p) for p in sorted(directory.glob("*.sql"))]


async def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied by this call."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations_on(conn, directory)
    finally:
        await conn.close()


async def apply_migrations_on(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for migration in available_migrations(directory):
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationChecksumMismatch(
                        f"migration {migration.version} was changed after it was applied; "
                        "write a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
            applied_now.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
