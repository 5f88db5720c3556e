"""Exports for the back office and auditors (issue 17, item 5; docs/adr/0028-kpi-report-and-exports.md).

Three tables, each as it stood at an instant (`as_of`), read in one read-only snapshot:

- **exchanges**: one row per exchange with an audit event at or before `as_of`; its stage is the stage of
  its last audit event by then (`stage_since` that event's instant), its held and paid cents the ledger's
  exchange account as of then. The parties, countries, dates and grant are the row's current values: the
  read model keeps no history of them (an `amend_dates` before `as_of` or after it shows the same dates).
- **transfers**: one row per ledger entry (two per transfer: its debit and its credit side) of the transfers
  booked at or before `as_of`, with the account's running totals right after it. Transfers and entries are
  immutable, so a row never changes once it appears.
- **payment-orders**: the orders written at or before `as_of`; finance's confirmation is shown only when it
  came at or before `as_of` too.

The renderers (clients/reports/) turn a `Table` into CSV or XLSX; a column's `kind` says how: `cents`
columns get a EUR column beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

import asyncpg

from ledger.store import DbConnection

MAX_EXPORT_ROWS = 1_000_000  # below XLSX's 1,048,576 rows a sheet; far above the programme's exchanges

ColumnKind = Literal["text", "int", "cents", "date", "datetime"]
Cell = str | int | date | datetime | None


class ExportKind(StrEnum):
    EXCHANGES = "exchanges"
    TRANSFERS = "transfers"
    PAYMENT_ORDERS = "payment-orders"


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind


@dataclass(frozen=True)
class Table:
    """One export: its kind, the instant it shows, its columns and its rows (cells in column order)."""

    kind: ExportKind
    as_of: datetime
    columns: tuple[Column, ...]
    rows: list[tuple[Cell, ...]]


class ExportTooLarge(ValueError):
    def __init__(self, kind: ExportKind) -> None:
        super().__init__(
            f"as_of: the {kind.value} export holds more than {MAX_EXPORT_ROWS} rows: choose an earlier as_of"
        )


_EXCHANGES_SQL = """
WITH last AS (
    SELECT DISTINCT ON (application_id) application_id, stage, at
      FROM audit_events WHERE at <= $1
     ORDER BY application_id, sequence DESC
), first AS (
    SELECT application_id, min(at) AS first_at FROM audit_events WHERE at <= $1 GROUP BY application_id
)
SELECT e.application_id, e.partnership_id, e.host_partnership_id,
       e.visitor_org_id, e.application -> 'visitor' ->> 'type' AS visitor_type,
       e.application -> 'visitor' ->> 'country' AS visitor_country,
       e.host_org_id, e.application -> 'host' ->> 'type' AS host_type, e.host_country,
       e.start_date, e.end_date,
       coalesce((e.application ->> 'submitted_at')::timestamptz, first.first_at) AS applied_at,
       last.stage, last.at AS stage_since, e.grant_cents,
       coalesce(bal.credits_pending, 0)::bigint AS held_cents, coalesce(bal.debits_posted, 0)::bigint AS paid_cents
  FROM exchanges e
  JOIN last USING (application_id)
  JOIN first USING (application_id)
  LEFT JOIN ledger_accounts a ON a.code = 'exchange:' || e.application_id
  LEFT JOIN LATERAL (SELECT le.credits_pending, le.debits_posted FROM ledger_entries le
                      WHERE le.account_id = a.id AND le.created_at <= $1
                      ORDER BY le.transfer_id DESC LIMIT 1) bal ON true
 ORDER BY e.application_id
 LIMIT $2"""

_TRANSFERS_SQL = """
SELECT t.id AS transfer_id, t.created_at, t.kind::text AS kind, t.idempotency_key, t.pending_id,
       CASE WHEN le.account_id = t.debit_account_id THEN 'debit' ELSE 'credit' END AS side,
       a.code AS account, a.partnership_id, a.exchange_id, t.amount_cents::bigint AS amount_cents,
       le.debits_pending::bigint AS debits_pending_cents, le.debits_posted::bigint AS debits_posted_cents,
       le.credits_pending::bigint AS credits_pending_cents, le.credits_posted::bigint AS credits_posted_cents
  FROM ledger_transfers t
  JOIN ledger_entries le ON le.transfer_id = t.id
  JOIN ledger_accounts a ON a.id = le.account_id
 WHERE t.created_at <= $1
 ORDER BY t.id, (le.account_id = t.debit_account_id) DESC
 LIMIT $2"""

_PAYMENT_ORDERS_SQL = """
SELECT payment_order_id, application_id, partnership_id, amount_cents, hold_id, post_transfer_id,
       payout_transfer_id, created_at,
       CASE WHEN confirmed_at <= $1 THEN confirmed_at END AS confirmed_at,
       CASE WHEN confirmed_at <= $1 THEN confirmed_by END AS confirmed_by,
       CASE WHEN confirmed_at <= $1 THEN payment_reference END AS payment_reference
  FROM payment_orders
 WHERE created_at <= $1
 ORDER BY created_at, payment_order_id
 LIMIT $2"""


def _columns(*spec: tuple[str, ColumnKind]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in spec)


QUERIES: dict[ExportKind, tuple[str, tuple[Column, ...]]] = {
    ExportKind.EXCHANGES: (
        _EXCHANGES_SQL,
        _columns(
            ("application_id", "text"),
            ("partnership_id", "text"),
            ("host_partnership_id", "text"),
            ("visitor_org_id", "text"),
            ("visitor_type", "text"),
            ("visitor_country", "text"),
            ("host_org_id", "text"),
            ("host_type", "text"),
            ("host_country", "text"),
            ("start_date", "date"),
            ("end_date", "date"),
            ("applied_at", "datetime"),
            ("stage", "text"),
            ("stage_since", "datetime"),
            ("grant_cents", "cents"),
            ("held_cents", "cents"),
            ("paid_cents", "cents"),
        ),
    ),
    ExportKind.TRANSFERS: (
        _TRANSFERS_SQL,
        _columns(
            ("transfer_id", "int"),
            ("created_at", "datetime"),
            ("kind", "text"),
            ("idempotency_key", "text"),
            ("pending_id", "int"),
            ("side", "text"),
            ("account", "text"),
            ("partnership_id", "text"),
            ("exchange_id", "text"),
            ("amount_cents", "cents"),
            ("debits_pending_cents", "cents"),
            ("debits_posted_cents", "cents"),
            ("credits_pending_cents", "cents"),
            ("credits_posted_cents", "cents"),
        ),
    ),
    ExportKind.PAYMENT_ORDERS: (
        _PAYMENT_ORDERS_SQL,
        _columns(
            ("payment_order_id", "text"),
            ("application_id", "text"),
            ("partnership_id", "text"),
            ("amount_cents", "cents"),
            ("hold_id", "int"),
            ("post_transfer_id", "int"),
            ("payout_transfer_id", "int"),
            ("created_at", "datetime"),
            ("confirmed_at", "datetime"),
            ("confirmed_by", "text"),
            ("payment_reference", "text"),
        ),
    ),
}


async def export_table(pool: asyncpg.Pool, kind: ExportKind, as_of: datetime) -> Table:
    """The `kind` export as it stood at `as_of` (timezone-aware), read in one read-only snapshot."""
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of: must be timezone-aware (e.g. 2026-03-01T12:00:00+00:00)")
    sql, columns = QUERIES[kind]
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await _fetch(conn, sql, as_of)
    if len(rows) > MAX_EXPORT_ROWS:
        raise ExportTooLarge(kind)
    return Table(kind, as_of, columns, [tuple(row[c.name] for c in columns) for row in rows])


async def _fetch(conn: DbConnection, sql: str, as_of: datetime) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql, as_of, MAX_EXPORT_ROWS + 1))
