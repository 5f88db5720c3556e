"""REVIEW: reviewer records, assignments of reviewers to applications, and reviewers' inboxes (issue 5).

- `assign` picks reviewers of the visitor's partnership without a conflict of interest (the choice is
  rules/review.py's) and books them as open assignments; a retry returns what the first attempt booked.
- `update` moves one assignment to a status (and deadline); repeating it changes nothing.
- The reviewer records and inboxes (`add_reviewer`, `list_reviewers`, `set_unavailable`, `inbox`) are
  what `cx reviewers ...`, `cx review inbox` and the REST API read and write.

Every function takes the caller's connection (a plain one for a command, a pool's for the API and the
activities, inside their transaction): the one way clients reach these rows (docs/adr/0014-one-way-imports.md).
The workflow stays the source of truth for decisions; these rows serve inboxes and load balancing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from ledger.persons import reveal, seal
from ledger.store import DbConnection
from rules.review import Candidate, choose_reviewers
from schemas.review import (
    Assignment,
    AssignmentStatus,
    AssignReviewersInput,
    AssignReviewersResult,
    Reviewer,
    ReviewerRole,
    UpdateAssignmentInput,
)

# Limits on every read (TIGER_STYLE). A partnership has tens of reviewers, a reviewer tens of open
# assignments; these bounds are far above that and only stop a runaway query.
MAX_CANDIDATES = 1000
MAX_REVIEWERS_LISTED = 5000
MAX_INBOX_ITEMS = 500

# Statuses of an application's assignment that keep its reviewer from being picked for it again:
# already assigned (open), already reviewed this round (submitted), conflicted (recused), or removed
# for silence (reassigned). Only a `closed` assignment (a review round that ended, e.g. before an
# amendment) lets the same person be picked again, which then reopens that row.
_NOT_AGAIN = ("open", "submitted", "recused", "reassigned")


class UnknownReviewer(Exception):
    """No reviewer has this id."""

    def __init__(self, reviewer_id: str) -> None:
        self.reviewer_id = reviewer_id
        super().__init__(f"reviewer_id {reviewer_id!r}: no such reviewer")


class MissingDeadline(Exception):
    """Opening an assignment that does not exist yet needs a deadline."""


class ReviewerLoad(Reviewer):
    """A reviewer record together with the number of their open assignments."""

    open_load: int = Field(ge=0)


class InboxItem(BaseModel):
    """One open assignment in a reviewer's inbox; stage and partnership come from the read model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: str
    # NULL when the read model has not caught up with the workflow yet (it is written asynchronously).
    stage: str | None
    partnership_id: str | None
    assigned_at: datetime
    due_at: datetime


# Eligible reviewers of one partnership for one application, with their open load. $1 partnership,
# $2 the day (available when unavailable_until is NULL or before it), $3 excluded reviewer ids, $4 the
# visitor's and host's organisations (neither the reviewer's own nor a declared conflict), $5 the
# application, $6 the statuses that keep a reviewer off this application, $7 the limit.
_CANDIDATES_SQL = """
SELECT r.reviewer_id, r.organisation_id, count(open_assignment.reviewer_id)::int AS open_load
  FROM reviewers r
  LEFT JOIN review_assignments open_assignment
    ON open_assignment.reviewer_id = r.reviewer_id AND open_assignment.status = 'open'
 WHERE r.partnership_id = $1
   AND 'reviewer' = ANY (r.roles)
   AND (r.unavailable_until IS NULL OR r.unavailable_until < $2)
   AND r.reviewer_id <> ALL ($3::text[])
   AND r.organisation_id <> ALL ($4::text[])
   AND NOT (r.conflicts && $4::text[])
   AND NOT EXISTS (SELECT 1 FROM review_assignments mine
                    WHERE mine.application_id = $5 AND mine.reviewer_id = r.reviewer_id
                      AND mine.status = ANY ($6::text[]))
 GROUP BY r.reviewer_id
 ORDER BY open_load, r.reviewer_id
 LIMIT $7
"""

# The application's assignments that count as "on it" now, oldest first.
_CURRENT_SQL = """
SELECT a.reviewer_id, r.organisation_id, a.status
  FROM review_assignments a JOIN reviewers r USING (reviewer_id)
 WHERE a.application_id = $1 AND a.status IN ('open', 'submitted')
 ORDER BY a.assigned_at, a.reviewer_id
"""

# Books the chosen reviewers. A conflict can only be a `closed` row of an earlier round (the candidate
# query excludes every other status), which is reopened with the new deadline.
_BOOK_SQL = """
INSERT INTO review_assignments (application_id, reviewer_id, due_at)
SELECT $1, reviewer_id, $3 FROM unnest($2::text[]) AS chosen (reviewer_id)
ON CONFLICT (application_id, reviewer_id) DO UPDATE
   SET status = 'open', assigned_at = now(), due_at = EXCLUDED.due_at, updated_at = now()
 WHERE review_assignments.status = 'closed'
"""

_OFFICERS_SQL = """
SELECT reviewer_id FROM reviewers WHERE partnership_id = $1 AND 'programme_officer' = ANY (roles)
 ORDER BY reviewer_id LIMIT $2
"""

# Moves an existing assignment; a no-op when it is already in that status with that deadline, so a
# retry writes nothing (and does not touch updated_at). A deadline extension keeps the status `open`
# and changes only due_at, hence the second condition.
_UPDATE_SQL = """
UPDATE review_assignments
   SET status = $3, due_at = coalesce($4, due_at), updated_at = now(),
       assigned_at = CASE WHEN $3 = 'open' AND status <> 'open' THEN now() ELSE assigned_at END
 WHERE application_id = $1 AND reviewer_id = $2
   AND (status <> $3 OR ($4::timestamptz IS NOT NULL AND due_at <> $4))
"""

# An officer's manual (re)assignment: creates the row, or reopens it, or moves its deadline.
_OPEN_SQL = """
INSERT INTO review_assignments (application_id, reviewer_id, due_at) VALUES ($1, $2, $3)
ON CONFLICT (application_id, reviewer_id) DO UPDATE
   SET status = 'open', due_at = EXCLUDED.due_at, updated_at = now(),
       assigned_at = CASE WHEN review_assignments.status <> 'open' THEN now()
                          ELSE review_assignments.assigned_at END
 WHERE review_assignments.status <> 'open' OR review_assignments.due_at <> EXCLUDED.due_at
"""


async def assign(conn: DbConnection, request: AssignReviewersInput) -> AssignReviewersResult:
    """Choose and book reviewers for one application; run inside the caller's transaction.

    Idempotent: every reviewer already on the application is in `excluded_reviewer_ids` (the workflow
    passes them), so an open assignment of the application outside that set can only have been booked
    by an earlier attempt of this very call (the activity committed, then its completion was lost).
    Those count towards `count` and only the rest is chosen, so a retry books nothing new and answers
    the same reviewers.
    """
    # Concurrency: choosing by open load is a read-then-write, so two applications of one partnership
    # assigned at the same moment could both read the same loads and pick the same least-loaded
    # people. A transaction-scoped advisory lock per partnership serialises assignment within the
    # partnership (released at commit or rollback; statements after it see the previous holder's
    # committed bookings under READ COMMITTED). It is simpler and safer than `SELECT ... FOR UPDATE`:
    # locking only the chosen rows would not stop a stale read of everybody's load, and locking all
    # candidate rows would also block `cx reviewers` edits. Assignment is rare (one per application
    # round), so serialising it per partnership costs nothing noticeable; a hash collision between two
    # partnerships only serialises them too.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('cx.review.assign:' || $1, 0))", request.partnership_id
    )
    excluded = request.excluded_reviewer_ids
    current = await conn.fetch(_CURRENT_SQL, request.application_id)
    booked_earlier = [r["reviewer_id"] for r in current if r["status"] == "open" and r["reviewer_id"] not in excluded]
    booked_earlier = booked_earlier[: request.count]
    needed = request.count - len(booked_earlier)
    chosen: list[Candidate] = []
    if needed > 0:
        rows = await conn.fetch(
            _CANDIDATES_SQL,
            request.partnership_id,
            request.on,
            sorted(excluded),
            [request.visitor_organisation_id, request.host_organisation_id],
            request.application_id,
            list(_NOT_AGAIN),
            MAX_CANDIDATES,
        )
        candidates = [Candidate(r["reviewer_id"], r["organisation_id"], r["open_load"]) for r in rows]
        chosen = choose_reviewers(candidates, needed, {r["organisation_id"] for r in current})
        if chosen:
            await conn.execute(_BOOK_SQL, request.application_id, [c.reviewer_id for c in chosen], request.due_at)
    wanted = set(booked_earlier) | {c.reviewer_id for c in chosen}
    # Read back what is booked rather than trusting the plan: the answer is the database's state.
    booked = [
        Assignment(reviewer_id=r["reviewer_id"], organisation_id=r["organisation_id"])
        for r in await conn.fetch(_CURRENT_SQL, request.application_id)
        if r["status"] == "open" and r["reviewer_id"] in wanted
    ]
    assert {a.reviewer_id for a in booked} == wanted, f"booked {booked} differs from the choice {sorted(wanted)}"
    officers = await conn.fetch(_OFFICERS_SQL, request.partnership_id, MAX_CANDIDATES)
    return AssignReviewersResult(
        assigned=tuple(booked),
        shortfall=request.count - len(booked),
        officers=tuple(r["reviewer_id"] for r in officers),
    )


async def update(conn: DbConnection, request: UpdateAssignmentInput) -> bool:
    """Move one assignment; return whether anything changed. Opening a missing assignment creates it
    (an officer's manual reassign); any other status for a missing assignment changes nothing.
    """
    due_at = request.due_at
    if request.status is AssignmentStatus.OPEN:
        if due_at is None:
            due_at = await conn.fetchval(
                "SELECT due_at FROM review_assignments WHERE application_id = $1 AND reviewer_id = $2",
                request.application_id,
                request.reviewer_id,
            )
            if due_at is None:
                raise MissingDeadline(
                    f"application {request.application_id!r}, reviewer {request.reviewer_id!r}: "
                    "opening a new assignment needs due_at"
                )
        try:
            status = await conn.execute(_OPEN_SQL, request.application_id, request.reviewer_id, due_at)
        except asyncpg.ForeignKeyViolationError:
            raise UnknownReviewer(request.reviewer_id) from None
        return status != "INSERT 0 0"
    status = await conn.execute(_UPDATE_SQL, request.application_id, request.reviewer_id, request.status.value, due_at)
    return status != "UPDATE 0"


# The reviewer records ------------------------------------------------------------------------------


def _reviewer_fields(row: Mapping[str, Any]) -> dict[str, object]:
    return {
        "reviewer_id": row["reviewer_id"],
        "name": row["name"],
        "organisation_id": row["organisation_id"],
        "country": row["country"],
        "partnership_id": row["partnership_id"],
        "roles": frozenset(ReviewerRole(role) for role in row["roles"]),
        "conflicts": frozenset(row["conflicts"]),
        "unavailable_until": row["unavailable_until"],
    }


async def add_reviewer(conn: DbConnection, reviewer: Reviewer) -> bool:
    """Create or update a reviewer record; return True when it was created.

    Re-adding the same id replaces every field except a set unavailability, which only
    `set_unavailable` clears: re-adding someone to fix their name must not end their holiday.
    """
    created: bool = await conn.fetchval(
        """INSERT INTO reviewers (reviewer_id, name, organisation_id, country, partnership_id, roles, conflicts,
                                   unavailable_until)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (reviewer_id) DO UPDATE
               SET name = EXCLUDED.name, organisation_id = EXCLUDED.organisation_id,
                   country = EXCLUDED.country, partnership_id = EXCLUDED.partnership_id,
                   roles = EXCLUDED.roles, conflicts = EXCLUDED.conflicts,
                   unavailable_until = coalesce(EXCLUDED.unavailable_until, reviewers.unavailable_until),
                   updated_at = now()
            RETURNING xmax = 0""",
        reviewer.reviewer_id,
        # The name is the person's: sealed under their key (ledger/persons.py), "erased" after their erasure.
        await seal(conn, reviewer.reviewer_id, reviewer.name),
        reviewer.organisation_id,
        reviewer.country,
        reviewer.partnership_id,
        sorted(role.value for role in reviewer.roles),
        sorted(reviewer.conflicts),
        reviewer.unavailable_until,
    )
    return created


async def get_reviewer(conn: DbConnection, reviewer_id: str) -> Reviewer | None:
    """The reviewer record, or None."""
    row = await conn.fetchrow(
        """SELECT reviewer_id, name, organisation_id, country, partnership_id, roles, conflicts, unavailable_until
             FROM reviewers WHERE reviewer_id = $1""",
        reviewer_id,
    )
    return None if row is None else Reviewer.model_validate(_reviewer_fields(await reveal(conn, dict(row))))


async def list_reviewers(conn: DbConnection, partnership_id: str | None = None) -> list[ReviewerLoad]:
    """Reviewer records (of one partnership, or all) with their open load, by partnership then id."""
    rows = await conn.fetch(
        """SELECT r.reviewer_id, r.name, r.organisation_id, r.country, r.partnership_id, r.roles, r.conflicts,
                   r.unavailable_until, count(a.reviewer_id)::int AS open_load
              FROM reviewers r
              LEFT JOIN review_assignments a ON a.reviewer_id = r.reviewer_id AND a.status = 'open'
             WHERE $1::text IS NULL OR r.partnership_id = $1
             GROUP BY r.reviewer_id
             ORDER BY r.partnership_id, r.reviewer_id
             LIMIT $2""",
        partnership_id,
        MAX_REVIEWERS_LISTED,
    )
    opened = await reveal(conn, [dict(r) for r in rows])
    return [ReviewerLoad.model_validate({**_reviewer_fields(r), "open_load": r["open_load"]}) for r in opened]


async def set_unavailable(conn: DbConnection, reviewer_id: str, until: date | None) -> None:
    """Mark a reviewer unavailable up to and including `until` (None: available again).

    Raises UnknownReviewer when there is no such reviewer.
    """
    status = await conn.execute(
        """UPDATE reviewers SET unavailable_until = $2, updated_at = now()
            WHERE reviewer_id = $1""",
        reviewer_id,
        until,
    )
    if status == "UPDATE 0":
        raise UnknownReviewer(reviewer_id)


async def inbox(conn: DbConnection, reviewer_id: str, limit: int = MAX_INBOX_ITEMS) -> list[InboxItem]:
    """A reviewer's open assignments, oldest deadline first (then application id, for a stable order).

    Stage and partnership come from the `exchanges` read model by LEFT JOIN: the projection may lag
    behind the assignment, and the item must show anyway.
    """
    rows = await conn.fetch(
        """SELECT a.application_id, e.stage, e.partnership_id, a.assigned_at, a.due_at
             FROM review_assignments a
             LEFT JOIN exchanges e USING (application_id)
            WHERE a.reviewer_id = $1 AND a.status = 'open'
            ORDER BY a.due_at, a.application_id
            LIMIT $2""",
        reviewer_id,
        min(limit, MAX_INBOX_ITEMS),
    )
    return [InboxItem.model_validate(dict(r)) for r in rows]
