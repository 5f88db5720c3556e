"""Closing an exchange in one unit of work: money back, the visit back, the terminal stage, one transaction.

What the workflow recorded since its last write (open assignments closed, finance's confirmation for
PAID) is written first; then a hold still pending is voided (its money returns to the budget), the
visitor organisation's visit is given back when the stay never took place (R7), and the terminal stage is
written with the read model's row. Every write is idempotent (the void by its key, the release by its
row, the audit rows by sequence), so a retry changes nothing. Telling the partnership's waitlist that
money came back is a Temporal signal, sent by the workflow after this commits.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.funding import as_application_error
from activities.projection import transact, write_events
from activities.screening import release
from ledger.errors import LedgerError
from ledger.store import DbConnection, LedgerStore
from schemas.closing import CloseExchangeInput, CloseExchangeResult
from schemas.events import ProjectionBatch


class ClosingActivities:
    def __init__(self, pool: asyncpg.Pool, store: LedgerStore, notify_email: str | None = None) -> None:
        self._pool = pool
        self._store = store
        self._notify_email = notify_email

    @activity.defn(name="close_exchange")
    async def close_exchange(self, request: CloseExchangeInput) -> CloseExchangeResult:
        app = request.projection.application

        async def close(conn: DbConnection, _: ProjectionBatch | None) -> CloseExchangeResult:
            released_cents = 0
            written = []
            if request.hold_id is not None and request.hold_voided is not None:
                try:
                    voided = await self._store.void(
                        idempotency_key=f"{app.application_id}:void:{request.hold_id}",
                        hold_id=request.hold_id,
                        conn=conn,
                    )
                except LedgerError as error:
                    raise as_application_error(error) from error
                released_cents = voided.amount_cents
                written.append(
                    request.hold_voided.model_copy(update={"reason": f"{released_cents} cents back to the budget"})
                )
            if request.release_visit_reason is not None:
                await release(conn, app.application_id, request.release_visit_reason)
            if request.final is not None:
                written.append(request.final)
            await write_events(conn, app, tuple(written), self._notify_email)
            return CloseExchangeResult(released_cents=released_cents, events=tuple(written))

        return await transact(self._pool, request.projection, close, self._notify_email)
