"""The back office's views of the read model (issue 14): counts by stage, waitlists, stuck exchanges, timelines.

What programme officers and ops read to oversee the scheme, each a bounded query of the read model the
workflows write (`exchanges`, `audit_events`); the REST API serves them (clients/api/routers/oversight.py)
and the web app's officer pages show them. Nothing here writes.

- **Waitlist order.** A partnership's `Funds` workflow (workflows/funding.py) keeps the FIFO in its state;
  an exchange joins it right after it enters WAITLISTED, in the same workflow task, with `joined_at` the
  instant of that entry. The read model's order is therefore the time of the latest WAITLISTED entry
  (ties by application id), which is the order the FIFO serves them in (an exchange ahead of another in
  time signalled `join` first).
- **Stuck.** An exchange is stuck when it is not in a terminal stage, nothing was recorded for it (no
  audit event) for `quiet_days` days (default `STUCK_AFTER_DAYS`), and no deadline of its stage lies ahead
  (none, or one already passed). An open exchange waiting on a timer that is still to come (a stay months
  ahead, a review window) is waiting as designed, not stuck; one past its deadline is also *late*.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ledger.persons import reveal
from ledger.store import DbConnection
from schemas.stages import TERMINAL_STAGES, Stage

STUCK_AFTER_DAYS = 14  # two working weeks without a single recorded event, with nothing scheduled ahead
MAX_STUCK_DAYS = 365
MAX_ROWS = 1000  # a limit on every read: far above a partnership's exchanges in one stage
MAX_TIMELINE_EVENTS = 2000  # an exchange records tens of events; this only stops a runaway read


class StageCount(BaseModel):
    stage: Stage
    partnership_id: str
    count: int = Field(ge=0)


class WaitingExchange(BaseModel):
    """One exchange of a partnership's waitlist, in the order the Funds workflow serves them."""

    position: int = Field(ge=1, description="1 is served first")
    application_id: str
    grant_cents: int | None
    waitlisted_at: datetime = Field(description="when it entered WAITLISTED (it joined the FIFO then)")
    waitlist_deadline: datetime | None = Field(description="it expires unless funded by then")


class StuckExchange(BaseModel):
    application_id: str
    stage: Stage
    partnership_id: str
    last_event: str | None
    last_event_at: datetime | None
    next_deadline: datetime | None
    quiet_days: int = Field(ge=0, description="whole days since the last recorded event")


class TimelineEvent(BaseModel):
    """One audit event: what happened, who did it, when, why, and under which policy version."""

    sequence: int
    event: str
    stage: str
    actor_id: str
    reason: str
    policy_version: str | None
    details: dict[str, Any]
    at: datetime


async def stage_counts(conn: DbConnection) -> list[StageCount]:
    """How many exchanges each partnership has in each stage (the read model's stages)."""
    rows = await conn.fetch(
        """SELECT stage, partnership_id, count(*) AS count FROM exchanges
            GROUP BY stage, partnership_id ORDER BY partnership_id, stage LIMIT $1""",
        MAX_ROWS * 20,
    )
    return [StageCount.model_validate(dict(row)) for row in rows]


async def waitlist(conn: DbConnection, partnership_id: str) -> list[WaitingExchange]:
    """The WAITLISTED exchanges of the partnership (its visitor's), first served first."""
    rows = await conn.fetch(
        """SELECT e.application_id, e.grant_cents, e.next_deadline AS waitlist_deadline,
                  coalesce(w.at, e.updated_at) AS waitlisted_at
             FROM exchanges e
             LEFT JOIN LATERAL (
                  SELECT a.at FROM audit_events a
                   WHERE a.application_id = e.application_id AND a.event = 'stage_entered'
                     AND a.stage = $2
                   ORDER BY a.sequence DESC LIMIT 1) w ON true
            WHERE e.partnership_id = $1 AND e.stage = $2
            ORDER BY waitlisted_at, e.application_id LIMIT $3""",
        partnership_id,
        Stage.WAITLISTED.value,
        MAX_ROWS,
    )
    return [WaitingExchange(position=index, **dict(row)) for index, row in enumerate(rows, start=1)]


async def stuck_exchanges(conn: DbConnection, quiet_days: int = STUCK_AFTER_DAYS) -> list[StuckExchange]:
    """Open exchanges with no event for `quiet_days` days and no deadline ahead, the quietest first."""
    assert 1 <= quiet_days <= MAX_STUCK_DAYS, "quiet_days is bounded at the door"
    rows = await conn.fetch(
        """SELECT e.application_id, e.stage, e.partnership_id, e.next_deadline,
                  last.event AS last_event, last.at AS last_event_at,
                  floor(extract(epoch FROM now() - coalesce(last.at, e.updated_at)) / 86400)::int AS quiet_days
             FROM exchanges e
             LEFT JOIN LATERAL (
                  SELECT a.event, a.at FROM audit_events a WHERE a.application_id = e.application_id
                   ORDER BY a.sequence DESC LIMIT 1) last ON true
            WHERE e.stage <> ALL($1::text[])
              AND coalesce(last.at, e.updated_at) < now() - make_interval(days => $2)
              AND (e.next_deadline IS NULL OR e.next_deadline < now())
            ORDER BY coalesce(last.at, e.updated_at), e.application_id LIMIT $3""",
        [stage.value for stage in TERMINAL_STAGES],
        quiet_days,
        MAX_ROWS,
    )
    return [StuckExchange.model_validate(dict(row)) for row in rows]


async def timeline(conn: DbConnection, application_id: str) -> list[TimelineEvent] | None:
    """Every audit event of the exchange, oldest first; None when the read model has no such exchange."""
    known = await conn.fetchval("SELECT 1 FROM exchanges WHERE application_id = $1", application_id)
    events = await conn.fetch(
        """SELECT sequence, event, stage, actor_id, reason, policy_version, details, at FROM audit_events
            WHERE application_id = $1 ORDER BY sequence LIMIT $2""",
        application_id,
        MAX_TIMELINE_EVENTS,
    )
    if not known and not events:
        return None
    opened = await reveal(conn, [{**dict(e), "details": json.loads(e["details"])} for e in events])
    return [TimelineEvent.model_validate(e) for e in opened]
