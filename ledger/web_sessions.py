"""The web app's sessions in Postgres (migration 0011): any API process can serve any request of a session.

Only hashes are stored: the SHA-256 of the session id the browser holds, and the fingerprint of the
principal's bearer token. Expired rows are never returned, and are pruned when a session is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: whose token it uses, the CSRF token its forms carry, a message for the next page."""

    id_sha256: str
    token_fingerprint: str
    subject: str
    csrf_token: str
    flash: str | None
    expires_at: datetime


async def open_session(
    pool: asyncpg.Pool,
    *,
    id_sha256: str,
    token_fingerprint: str,
    subject: str,
    csrf_token: str,
    lifetime: timedelta,
) -> None:
    """Record a new session (and prune the expired ones: sign-in is rare enough to carry the cleaning)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        await conn.execute(
            """INSERT INTO web_sessions (id_sha256, token_fingerprint, subject, csrf_token, expires_at)
               VALUES ($1, $2, $3, $4, now() + $5)""",
            id_sha256,
            token_fingerprint,
            subject,
            csrf_token,
            lifetime,
        )


async def find_session(pool: asyncpg.Pool, id_sha256: str) -> WebSession | None:
    """The live session with this id hash, or None (unknown or expired)."""
    row = await pool.fetchrow(
        """SELECT id_sha256, token_fingerprint, subject, csrf_token, flash, expires_at
             FROM web_sessions WHERE id_sha256 = $1 AND expires_at > now()""",
        id_sha256,
    )
    return None if row is None else WebSession(**dict(row))


async def clear_flash(pool: asyncpg.Pool, id_sha256: str) -> None:
    """The one-shot message was shown (it came with the session row): it is not shown again."""
    await pool.execute("UPDATE web_sessions SET flash = NULL WHERE id_sha256 = $1", id_sha256)


async def set_flash(pool: asyncpg.Pool, id_sha256: str, message: str) -> None:
    await pool.execute("UPDATE web_sessions SET flash = $2 WHERE id_sha256 = $1", id_sha256, message)


async def close_session(pool: asyncpg.Pool, id_sha256: str) -> None:
    await pool.execute("DELETE FROM web_sessions WHERE id_sha256 = $1", id_sha256)
