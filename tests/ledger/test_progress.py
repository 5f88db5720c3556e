"""The read model's progress of many exchanges comes back in one read, with exchanges not yet projected left out."""

from __future__ import annotations

import asyncpg

from ledger.progress import Progress, exchange_progress
from schemas.stages import Stage
from tests.ledger.conftest import Ids

_ROW_SQL = """
INSERT INTO exchanges (application_id, partnership_id, host_partnership_id, visitor_org_id, host_org_id, host_country,
                       start_date, end_date, stage, submitted_by, last_sequence, updated_at)
VALUES ($1, 'VOP', 'HOP', 'vo', 'ho', 'FR', '2024-07-01', '2024-07-05', $2, 'someone', $3, now())"""


async def test_progress_names_each_projected_exchange_and_leaves_out_the_rest(pg_pool: asyncpg.Pool, ids: Ids) -> None:
    """Two projected exchanges come back with their stage and last sequence; one never projected is absent."""
    review, paid, missing = ids.exchange("review"), ids.exchange("paid"), ids.exchange("missing")
    await pg_pool.execute(_ROW_SQL, review, "REVIEW", 3)
    await pg_pool.execute(_ROW_SQL, paid, "PAID", 11)

    found = await exchange_progress(pg_pool, [review, paid, missing])

    assert found == {review: Progress(Stage.REVIEW, 3), paid: Progress(Stage.PAID, 11)}
    async with pg_pool.acquire() as conn:
        assert await exchange_progress(conn, [review]) == {review: Progress(Stage.REVIEW, 3)}
    assert await exchange_progress(pg_pool, []) == {}
