"""Counters in fixed time windows, shared by every API process through Postgres (migration 0013).

The window a moment falls in is computed from the database's clock (`now()`), never a process's, so two API
processes behind one load balancer count into the same row. A count is one upsert; a read is one indexed
lookup. Fixed windows let a caller spend up to twice the limit across a window's edge: a bound, not a
smoother, which is what a throttle on guessing and runaway writes needs (ADR 0023).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg

# The window containing now(): its start is now() rounded down to a multiple of the window's length.
_WINDOW = "to_timestamp(floor(extract(epoch FROM now()) / $2) * $2)"


@dataclass(frozen=True)
class WindowCount:
    """How many were counted in the current window, and the whole seconds until it ends (>= 1)."""

    count: int
    seconds_left: int


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


async def add_one(pool: asyncpg.Pool, bucket: str, window_s: int) -> WindowCount:
    """Count one more in `bucket`'s current window of `window_s` seconds; the new count."""
    row = await pool.fetchrow(
        f"""INSERT INTO api_rate_counts AS c (bucket, window_start, window_end, count)
            VALUES ($1, {_WINDOW}, {_WINDOW} + make_interval(secs => $2), 1)
            ON CONFLICT (bucket, window_start) DO UPDATE SET count = c.count + 1
            RETURNING c.count, extract(epoch FROM c.window_end - now())::float8 AS left_s""",  # noqa: S608 - a constant
        bucket,
        window_s,
    )
    assert row is not None, "an upsert returns its row"
    return WindowCount(row["count"], _seconds(row["left_s"]))


async def current(pool: asyncpg.Pool, bucket: str, window_s: int) -> WindowCount:
    """The count of `bucket`'s current window (0 when nothing was counted in it)."""
    row = await pool.fetchrow(
        f"""SELECT count, extract(epoch FROM window_end - now())::float8 AS left_s
              FROM api_rate_counts WHERE bucket = $1 AND window_start = {_WINDOW}""",  # noqa: S608 - a constant
        bucket,
        window_s,
    )
    return WindowCount(0, 1) if row is None else WindowCount(row["count"], _seconds(row["left_s"]))


async def prune(pool: asyncpg.Pool) -> int:
    """Delete the rows of windows that have ended; how many."""
    done = await pool.execute("DELETE FROM api_rate_counts WHERE window_end < now()")
    return int(done.split()[-1])
