"""How far each exchange has got, as the read model says: its stage and the sequence of its last projected event.

The Exchange workflow projects its events before it waits for people (activities/projection.py), and a row
only ever moves forward, so a `last_sequence` that has not changed since a caller last asked the workflow
means the workflow has nothing new to say. A caller that drives many exchanges (the demo, issue 12) reads
this one row per exchange, all in one statement, and queries the workflow (a Temporal query, billed as an
action on Temporal Cloud) only for the exchanges that moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ledger.store import DbConnection
from schemas.stages import Stage

MAX_EXCHANGES = 10_000  # a limit on everything: one read names at most this many exchanges

_PROGRESS_SQL = """
SELECT application_id, stage, last_sequence
  FROM exchanges
 WHERE application_id = ANY($1::text[])"""


@dataclass(frozen=True)
class Progress:
    """One exchange's row in the read model: its stage and the sequence of the last event projected."""

    stage: Stage
    last_sequence: int


async def exchange_progress(db: asyncpg.Pool | DbConnection, application_ids: Sequence[str]) -> dict[str, Progress]:
    """The read model's progress of each of these exchanges that has been projected (an exchange not yet
    projected has no entry), in one statement."""
    assert len(application_ids) <= MAX_EXCHANGES, f"{len(application_ids)} exchanges in one read"
    if not application_ids:
        return {}
    rows = await db.fetch(_PROGRESS_SQL, list(application_ids))
    return {row["application_id"]: Progress(Stage(row["stage"]), row["last_sequence"]) for row in rows}
