"""Every stage: project a transition to the read model and the append-only audit trail.

Idempotent under retries: the audit row is keyed by (exchange, sequence) and the read model only
moves forward (a row is updated only by a higher sequence).
"""

from __future__ import annotations

import json

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.metrics import count
from activities.outbox import DbConnection, enqueue
from schemas.activities import ConfirmedPayment, ProjectTransitionInput
from schemas.errors import ErrorType

# Events a person must hear about; each becomes an e-mail in the outbox, written with its audit row.
NOTIFIED_EVENTS = frozenset(
    {
        "review_reminder",
        "review_escalated",
        "agreement_reminder",
        "report_reminder",
        "report_validation_late",
        "payment_sla_missed",
        "payment_unconfirmed",
        "changes_requested",
    }
)


async def _record_confirmation(conn: DbConnection, application_id: str, paid: ConfirmedPayment) -> None:
    """Finance's reference and time on the payment order, in the transaction that makes the exchange PAID.

    Written once: a retried projection finds the same reference; a different one would mean two
    confirmations were accepted, which the workflow never does, so it is a bug to stop on, not to retry.
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


_UNSTORABLE = {c for c in range(0x20) if chr(c) not in "\t\n\r"} | {0x7F} | set(range(0x80, 0xA0))


def _clean(value: object) -> object:
    if isinstance(value, str):
        return "".join("\ufffd" if ord(c) in _UNSTORABLE or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def sanitised(event: ProjectTransitionInput, error: str) -> ProjectTransitionInput:
    """The event with every character Postgres cannot store replaced, and the replacement noted."""
    data = _clean(event.model_dump(mode="json"))
    assert isinstance(data, dict)
    data["details"] = {**data.get("details", {}), "sanitised": f"characters Postgres refused were replaced: {error}"}
    return ProjectTransitionInput.model_validate(data)


class ProjectionActivities:
    def __init__(self, pool: asyncpg.Pool, notify_email: str | None = None) -> None:
        self._pool = pool
        self._notify_email = notify_email

    @activity.defn(name="record_transition")
    async def record_transition(self, event: ProjectTransitionInput) -> None:
        """Project one event; data Postgres refuses is a bug to alert on, never a two-hour retry (issue 11).

        Everything that enters is checked at the edge (schemas/text.py), so Postgres refusing the *data*
        (SQLSTATE class 22: a NUL byte, text it cannot encode) means a hole in those checks. Retrying
        cannot help and would leave the read model stale, so: count it and log it as an error (ops alert
        on `cx_projection_errors`), and project the event once more with the offending characters
        replaced by U+FFFD, marked as sanitised in its audit row. A second refusal, or a constraint the
        event breaks (class 23), fails the activity for good; the workflow records an alert and goes on.
        """
        try:
            await self._project(event)
            return
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as refused:
            first = refused
        count(
            "cx_projection_errors",
            1,
            "events Postgres refused to project (a bug: input that passed validation)",
            event=event.event,
            sqlstate=first.sqlstate or "",
        )
        activity.logger.error(
            "projection refused by Postgres: a bug, alert",
            extra={"application_id": event.application.application_id, "event": event.event, "error": str(first)},
        )
        if isinstance(first, asyncpg.DataError):
            try:
                await self._project(sanitised(event, str(first)))
                return
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as again:
                first = again
        raise ApplicationError(
            f"record_transition {event.event} #{event.sequence}: Postgres refuses this event ({first}); a bug",
            type=ErrorType.PROJECTION_REJECTED,
            non_retryable=True,
        )

    async def _project(self, event: ProjectTransitionInput) -> None:
        app = event.application
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO audit_events (application_id, sequence, event, stage, actor_id, reason,
                                             policy_version, details, at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
                   ON CONFLICT (application_id, sequence) DO NOTHING""",
                app.application_id,
                event.sequence,
                event.event,
                event.stage.value,
                event.actor_id,
                event.reason,
                event.policy_version,
                json.dumps(event.details, default=str),
                event.at,
            )
            await conn.execute(
                """INSERT INTO exchanges (application_id, partnership_id, host_partnership_id, visitor_org_id,
                                          host_org_id, host_country, start_date, end_date, stage, grant_cents,
                                          held_cents, paid_cents, next_deadline, policy_version, submitted_by,
                                          last_sequence, updated_at, application)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb)
                   ON CONFLICT (application_id) DO UPDATE SET
                       stage = EXCLUDED.stage, grant_cents = EXCLUDED.grant_cents,
                       held_cents = EXCLUDED.held_cents, paid_cents = EXCLUDED.paid_cents,
                       next_deadline = EXCLUDED.next_deadline, policy_version = EXCLUDED.policy_version,
                       start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date,
                       last_sequence = EXCLUDED.last_sequence, updated_at = EXCLUDED.updated_at,
                       application = COALESCE(exchanges.application, EXCLUDED.application)
                   WHERE exchanges.last_sequence < EXCLUDED.last_sequence""",
                app.application_id,
                app.visitor_partnership_id,
                app.host_partnership_id,
                app.visitor.organisation_id,
                app.host.organisation_id,
                app.host.country,
                app.start_date,
                app.end_date,
                event.stage.value,
                event.grant_cents,
                event.held_cents,
                event.paid_cents,
                event.next_deadline,
                event.policy_version,
                app.submitted_by,
                event.sequence,
                event.at,
                app.model_dump_json(),
            )
            if event.payment_confirmation is not None:
                await _record_confirmation(conn, app.application_id, event.payment_confirmation)
            count(
                "cx_events",
                1,
                "projected exchange events",
                event=event.event,
                stage=event.stage.value,
                partnership=app.visitor_partnership_id,
            )
            if self._notify_email and event.event in NOTIFIED_EVENTS:
                await enqueue(
                    conn,
                    dedup_key=f"notify:{app.application_id}:{event.sequence}",
                    topic="notification",
                    channel="email",
                    destination=self._notify_email,
                    payload={
                        "subject": f"[ClusterXchange] {app.application_id}: {event.event.replace('_', ' ')}",
                        "text": f"Exchange {app.application_id} ({event.stage.value}): {event.reason}\n",
                        "application_id": app.application_id,
                        "event": event.event,
                    },
                )
