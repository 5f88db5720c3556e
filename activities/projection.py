"""Every stage: the read model and the append-only audit trail, written in batches.

The Exchange workflow records events without an activity each (schemas/events.py); a batch is written
here, either by the activity that does a stage's own work (in the same transaction: `transact`), or on its
own (`record_events`) when the workflow is about to wait for people. Idempotent under retries: an audit row
is keyed by (exchange, sequence), the read model's row only moves forward (a row is updated only by a
higher sequence), and an assignment's status is set, not toggled.

Data Postgres refuses (SQLSTATE class 22: a NUL byte, text it cannot encode) means a hole in the edge
checks (schemas/text.py). Retrying cannot help and would leave the read model stale for hours, so
`transact` counts it (`cx_projection_errors`, an ops alert), logs it as an error, and runs the whole
transaction once more with the offending characters replaced by U+FFFD, marked `sanitised` in the audit
rows. A second refusal, or a broken constraint (class 23), fails the activity for good
(`projection_rejected`): the workflow records an alert and goes on (issue 11).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import count
from activities.outbox import enqueue
from ledger.persons import seal
from ledger.review import MissingDeadline, UnknownReviewer
from ledger.review import update as update_assignment
from ledger.store import DbConnection
from schemas.errors import ErrorType
from schemas.events import NOTIFIED_EVENTS, ConfirmedPayment, ProjectedEvent, ProjectionBatch
from schemas.exchange import PERSONAL_APPLICATION_FIELDS, ApplicationInput
from schemas.review import UpdateAssignmentInput
from schemas.stages import SYSTEM_ACTOR

T = TypeVar("T")

_AUDIT_SQL = """
INSERT INTO audit_events (application_id, sequence, event, stage, actor_id, reason, policy_version, details, at)
SELECT $1, e.sequence, e.event, e.stage, e.actor_id, e.reason, e.policy_version, e.details, e.at
  FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::timestamptz[])
       AS e(sequence, event, stage, actor_id, reason, policy_version, details, at)
ON CONFLICT (application_id, sequence) DO NOTHING"""

_READ_MODEL_SQL = """
INSERT INTO exchanges (application_id, partnership_id, host_partnership_id, visitor_org_id, host_org_id,
                       host_country, start_date, end_date, stage, grant_cents, held_cents, paid_cents,
                       next_deadline, policy_version, submitted_by, last_sequence, updated_at, application)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb)
ON CONFLICT (application_id) DO UPDATE SET
    stage = EXCLUDED.stage, grant_cents = EXCLUDED.grant_cents,
    held_cents = EXCLUDED.held_cents, paid_cents = EXCLUDED.paid_cents,
    next_deadline = EXCLUDED.next_deadline, policy_version = EXCLUDED.policy_version,
    start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date,
    last_sequence = EXCLUDED.last_sequence, updated_at = EXCLUDED.updated_at,
    application = EXCLUDED.application
WHERE exchanges.last_sequence < EXCLUDED.last_sequence"""


async def _sealed_reasons(conn: DbConnection, events: tuple[ProjectedEvent, ...]) -> list[str]:
    """Each event's reason, sealed under its author's key when a person wrote it (a comment, a justification:
    ledger/persons.py); the system's own reasons are the engine's words and stay as they are."""
    return [e.reason if e.actor_id == SYSTEM_ACTOR else await seal(conn, e.actor_id, e.reason) for e in events]


async def _sealed_application(conn: DbConnection, app: ApplicationInput) -> str:
    """The application as the read model keeps it: its free text sealed under the submitter's key."""
    document = app.model_dump(mode="json")
    for name in PERSONAL_APPLICATION_FIELDS:
        if isinstance(document.get(name), str):
            document[name] = await seal(conn, app.submitted_by, document[name])
    return json.dumps(document)


async def write_events(
    conn: DbConnection, app: ApplicationInput, events: tuple[ProjectedEvent, ...], notify_email: str | None
) -> None:
    """Audit rows for `events` and the read model's row as the last of them leaves it, in the caller's
    transaction (one statement each, whatever the number of events)."""
    if not events:
        return
    await conn.execute(
        _AUDIT_SQL,
        app.application_id,
        [e.sequence for e in events],
        [e.event.value for e in events],
        [e.stage.value for e in events],
        [e.actor_id for e in events],
        await _sealed_reasons(conn, events),
        [e.policy_version for e in events],
        [json.dumps(e.details, default=str) for e in events],
        [e.at for e in events],
    )
    last = events[-1]
    await conn.execute(
        _READ_MODEL_SQL,
        app.application_id,
        app.visitor_partnership_id,
        app.host_partnership_id,
        app.visitor.organisation_id,
        app.host.organisation_id,
        app.host.country,
        app.start_date,
        app.end_date,
        last.stage.value,
        last.grant_cents,
        last.held_cents,
        last.paid_cents,
        last.next_deadline,
        last.policy_version,
        app.submitted_by,
        last.sequence,
        last.at,
        await _sealed_application(conn, app),
    )
    for event in events:
        count("cx_events", 1, "projected exchange events", event=event.event.value, stage=event.stage.value,
              partnership=app.visitor_partnership_id)  # fmt: skip
        if notify_email and event.event in NOTIFIED_EVENTS:
            await enqueue(
                conn,
                dedup_key=f"notify:{app.application_id}:{event.sequence}",
                topic="notification",
                channel="email",
                destination=notify_email,
                payload={
                    "subject": f"[ClusterXchange] {app.application_id}: {event.event.value.replace('_', ' ')}",
                    # The event, never its reason: a reason is a person's free text (sealed in the audit
                    # trail, erasable); a copy in a mailbox would be out of erasure's reach (ADR 0025).
                    "text": f"Exchange {app.application_id} ({event.stage.value}): "
                    f"{event.event.value.replace('_', ' ')}. The reason is in the exchange's timeline.\n",
                    "application_id": app.application_id,
                    "event": event.event.value,
                },
            )


async def write_batch(conn: DbConnection, batch: ProjectionBatch, notify_email: str | None) -> None:
    """Everything the workflow recorded since its last write, in the caller's transaction."""
    app = batch.application
    await write_events(conn, app, batch.events, notify_email)
    for change in batch.assignments:
        try:
            await update_assignment(
                conn,
                UpdateAssignmentInput(
                    application_id=app.application_id,
                    reviewer_id=change.reviewer_id,
                    status=change.status,
                    due_at=change.due_at,
                ),
            )
        except (UnknownReviewer, MissingDeadline) as error:
            # Permanent: retrying cannot make the person exist. The workflow never asks for it (it moves only
            # assignments it booked), so this is a bug: fail the write for good.
            raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from None
    if batch.payment_confirmation is not None:
        await _record_confirmation(conn, app.application_id, batch.payment_confirmation)


async def transact(
    pool: asyncpg.Pool,
    batch: ProjectionBatch | None,
    work: Callable[[DbConnection, ProjectionBatch | None], Awaitable[T]],
    notify_email: str | None = None,
) -> T:
    """Write `batch`, then do `work`, in one transaction; see the module docstring for refused data.

    A stage's own work never waits on its audit trail: when even the sanitised batch is refused, the work
    is done without it (the next batch carries the read model forward; the lost rows are alerted on).
    """
    try:
        return await _once(pool, batch, work, notify_email)
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as refused:
        first: asyncpg.PostgresError = refused
    name = activity.info().activity_type if activity.in_activity() else "projection"
    count("cx_projection_errors", 1, "events Postgres refused to project (a bug: input that passed validation)",
          activity=name, sqlstate=first.sqlstate or "")  # fmt: skip
    activity.logger.error("Postgres refused an exchange's data: a bug, alert", extra={"error": str(first)})
    if batch is not None:
        if isinstance(first, asyncpg.DataError):
            try:
                return await _once(pool, sanitised(batch, str(first)), work, notify_email)
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as again:
                first = again
        if work is not _nothing:
            activity.logger.error("the batch is dropped so the stage's work goes on", extra={"error": str(first)})
            return await _once(pool, None, work, notify_email)
    raise ApplicationError(
        f"{name}: Postgres refuses this exchange's data ({first}); a bug", type=ErrorType.PROJECTION_REJECTED,
        non_retryable=True,
    )  # fmt: skip


async def _once(
    pool: asyncpg.Pool,
    batch: ProjectionBatch | None,
    work: Callable[[DbConnection, ProjectionBatch | None], Awaitable[T]],
    notify_email: str | None,
) -> T:
    async with pool.acquire() as conn, conn.transaction():
        if batch is not None:
            await write_batch(conn, batch, notify_email)
        return await work(conn, batch)


async def _nothing(_conn: DbConnection, _batch: ProjectionBatch | None) -> None:
    return None


_UNSTORABLE = {c for c in range(0x20) if chr(c) not in "\t\n\r"} | {0x7F} | set(range(0x80, 0xA0))


def _clean(value: object) -> object:
    if isinstance(value, str):
        return "".join("\ufffd" if ord(c) in _UNSTORABLE or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def sanitised(batch: ProjectionBatch, error: str) -> ProjectionBatch:
    """The batch with every character Postgres cannot store replaced, and the replacement noted."""
    data = _clean(batch.model_dump(mode="json"))
    assert isinstance(data, dict)
    note = f"characters Postgres refused were replaced: {error}"
    data["events"] = [{**e, "details": {**e.get("details", {}), "sanitised": note}} for e in data.get("events", [])]
    return ProjectionBatch.model_validate(data)


async def _record_confirmation(conn: DbConnection, application_id: str, paid: ConfirmedPayment) -> None:
    """Finance's reference and time on the payment order, in the transaction that makes the exchange PAID.

    Written once: a retried write finds the same reference; a different one would mean two confirmations
    were accepted, which the workflow never does, so it is a bug to stop on, not to retry.
    """
    recorded: str | None = await conn.fetchval(
        """UPDATE payment_orders SET payment_reference = $3, confirmed_at = $4, confirmed_by = $5
            WHERE application_id = $1 AND payment_order_id = $2 AND payment_reference IS NULL
        RETURNING payment_reference""",
        application_id,
        paid.payment_order_id,
        paid.payment_reference,
        paid.confirmed_at,
        paid.confirmed_by,
    )
    if recorded is not None:
        return
    existing: str | None = await conn.fetchval(
        "SELECT payment_reference FROM payment_orders WHERE application_id = $1 AND payment_order_id = $2",
        application_id,
        paid.payment_order_id,
    )
    if existing != paid.payment_reference:
        raise ApplicationError(
            f"payment order {paid.payment_order_id} of {application_id}: "
            + (
                "no such order"
                if existing is None
                else f"already confirmed as {existing!r}, not {paid.payment_reference!r}"
            ),
            type=ErrorType.INVALID_REQUEST,
            non_retryable=True,
        )


class ProjectionActivities:
    def __init__(self, pool: asyncpg.Pool, notify_email: str | None = None) -> None:
        self.pool = pool
        self.notify_email = notify_email

    @activity.defn(name="record_events")
    async def record_events(self, batch: ProjectionBatch) -> None:
        """Write a batch on its own: the workflow is about to wait, and people must see it first."""
        await transact(self.pool, batch, _nothing, self.notify_email)
