"""Benchmark of the pool's release (issue 12): asyncpg's default reset against ours (ledger/pool.py `keep_session`).

Each variant runs the same short transaction (BEGIN, one statement, COMMIT: the shape of a ledger or
projection write) through a pool, interleaved in rounds, and the ratio ours/default is printed per round
with its median and spread. Uses DATABASE_URL's server, or starts an embedded Postgres in a temporary
directory. Not a test: `python -m bench.pool`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from ledger.pool import keep_session
from workers.devstack import EmbeddedPostgres


async def transactions_per_second(dsn: str, *, keep: bool, count: int, concurrency: int) -> float:
    """`count` transactions through a pool of `concurrency` connections, `concurrency` callers at a time."""
    pool = await asyncpg.create_pool(
        dsn, min_size=concurrency, max_size=concurrency, reset=keep_session if keep else None
    )
    try:

        async def caller(share: int) -> None:
            for _ in range(share):
                async with pool.acquire() as connection, connection.transaction():
                    await connection.fetchval("SELECT 1")

        started = time.perf_counter()
        await asyncio.gather(*(caller(count // concurrency) for _ in range(concurrency)))
        return (count // concurrency) * concurrency / (time.perf_counter() - started)
    finally:
        await pool.close()


async def run(dsn: str, rounds: int, count: int, concurrency: int) -> None:
    default: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        default.append(await transactions_per_second(dsn, keep=False, count=count, concurrency=concurrency))
        ours.append(await transactions_per_second(dsn, keep=True, count=count, concurrency=concurrency))
    ratios = [o / d for o, d in zip(ours, default, strict=True)]
    print(f"pool release, {rounds} interleaved rounds of {count} transactions, {concurrency} connections")
    print(f"  asyncpg default reset: {statistics.median(default):,.0f} transactions/s (median)")
    print(f"  keep_session:          {statistics.median(ours):,.0f} transactions/s (median)")
    print(f"  ratio ours/default: {statistics.median(ratios):.2f} (spread {min(ratios):.2f}-{max(ratios):.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--count", type=int, default=4000, help="transactions per round and variant (4000)")
    parser.add_argument("--concurrency", type=int, default=8, help="callers and pool size (8)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50 or not 100 <= args.count <= 1_000_000 or not 1 <= args.concurrency <= 100:
        parser.error("--rounds 1-50, --count 100-1000000, --concurrency 1-100")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        asyncio.run(run(configured, args.rounds, args.count, args.concurrency))
        return 0
    state = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
    server = EmbeddedPostgres(state / "pgdata")
    try:
        asyncio.run(run(server.start(), args.rounds, args.count, args.concurrency))
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
