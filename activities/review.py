"""REVIEW: the assignment of reviewers after admission (reassignments, a reopened review), as an activity.

The first reviewers are booked with admission (activities/submission.py); this activity books more when a
reviewer recuses or is reassigned, or a review is reopened, in one transaction with what the workflow
recorded since its last write. The SQL is ledger/review.py's.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.projection import transact
from ledger.review import assign
from ledger.store import DbConnection
from schemas.review import AssignReviewersInput, AssignReviewersResult


class ReviewActivities:
    """The review stage's database work after admission (reassignments, a reopened review), on one pool."""

    def __init__(self, pool: asyncpg.Pool, notify_email: str | None = None) -> None:
        self._pool = pool
        self._notify_email = notify_email

    @activity.defn(name="assign_reviewers")
    async def assign_reviewers(self, request: AssignReviewersInput) -> AssignReviewersResult:
        """Book `count` reviewers for an application (fewer when too few are eligible; see `shortfall`), with
        what the workflow recorded since its last write, in one transaction."""

        async def book(conn: DbConnection, _: object) -> AssignReviewersResult:
            return await assign(conn, request)

        return await transact(self._pool, request.projection, book, self._notify_email)
