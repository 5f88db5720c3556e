"""REPORTING: the evidence check of a submitted report, in one transaction with the workflow's recorded events.

The files themselves are checked and stored when they are uploaded (ledger/evidence.py, through `cx
evidence add` or the REST API); here the Exchange workflow learns which of a report's items were never
uploaded for the application or differ in size or kind, whose stored copy (a local directory or S3, the
worker's CX_EVIDENCE_STORE) is missing or damaged, and when the VOP's validation is due.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from temporalio import activity

from activities.projection import transact
from ledger.evidence import unreadable_copies, verify
from ledger.evidence_store import EvidenceStore
from ledger.store import DbConnection
from rules.calendar import add_working_days
from schemas.events import ProjectionBatch
from schemas.reporting import VerifyEvidenceInput, VerifyEvidenceResult


class EvidenceActivities:
    """The reporting stage's evidence checks, on one shared pool and the process's evidence store.

    Without a store (tests of the workflow's logic) only the records are compared; `cx worker` always has
    one (workers/evidence_store.py), the same the API and `cx evidence` upload to.
    """

    def __init__(self, pool: asyncpg.Pool, notify_email: str | None = None, store: EvidenceStore | None = None) -> None:
        self._pool = pool
        self._notify_email = notify_email
        self._store = store

    @activity.defn(name="verify_evidence")
    async def verify_evidence(self, request: VerifyEvidenceInput) -> VerifyEvidenceResult:
        """List the report's items that were never uploaded for the application or differ in size or kind,
        and count the VOP's validation deadline; the workflow's recorded events are written on the way.

        A finding is a result, not an error: the workflow decides to refuse the report with it. Database
        and store failures propagate and are retried. The stored copies are read before the transaction,
        so no connection is held while the bytes travel.
        """
        unreadable = {} if self._store is None else await unreadable_copies(self._store, request.items)

        async def check(conn: DbConnection, _: ProjectionBatch | None) -> VerifyEvidenceResult:
            result = await verify(conn, request, unreadable)
            if request.validation_working_days is None or request.now is None or request.country is None:
                return result
            due = add_working_days(request.now.date(), request.validation_working_days, request.country)
            return result.model_copy(update={"validation_due": datetime.combine(due, request.now.timetz())})

        result = await transact(self._pool, request.projection, check, self._notify_email)
        for mismatch in result.mismatched:
            if mismatch.item.sha256 in unreadable:
                # For the operators: a recorded file lost or damaged in the store is a storage fault (restore
                # it from a backup or an earlier object version), whatever the applicant does next.
                activity.logger.warning("stored evidence unreadable: %s", unreadable[mismatch.item.sha256])
        return result
