"""Nightly reconciliation's reads and its one write: pages of exchanges compared with the ledger and the
payment orders, and the findings table (docs/adr/0026-reconciliation-schedule.md).

Every comparison pages through the read model in application-id order (keyset pages, `after` the last id
of the previous page), so a run's memory and each statement's cost are bounded by the page size, whatever
the number of exchanges. Nothing here writes to the ledger, the read model or the payment orders: the only
write is `record_findings`, into `reconciliation_findings` (migration 0016), idempotent per run.
Exchanges whose row, ledger bookings or payment order changed at or after `cutoff` are left for the next
run: the three are written by different steps of the workflow, and a run must not report the instant
between two of them as a difference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ledger.store import DbConnection
from schemas.ledger import CheckReport
from schemas.reconcile import Finding, FindingKind

_TEXT_LIMIT = 2_000

# One page of the read model with what the ledger booked on each exchange's account.
_LEDGER_PAGE_SQL = """
SELECT x.application_id, x.stage, x.held_cents, x.paid_cents,
       coalesce(m.open_held_cents, 0) AS open_held_cents, coalesce(m.posted_cents, 0) AS posted_cents,
       coalesce(m.paid_out_cents, 0) AS paid_out_cents,
       greatest(x.updated_at, m.last_booked_at) >= $3 AS recent
  FROM exchanges x
  LEFT JOIN LATERAL (
      SELECT sum(t.amount_cents) FILTER (WHERE t.kind = 'hold' AND t.credit_account_id = a.id AND NOT EXISTS
                 (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id)) AS open_held_cents,
             sum(t.amount_cents) FILTER (WHERE t.kind = 'post' AND t.credit_account_id = a.id) AS posted_cents,
             sum(t.amount_cents) FILTER (WHERE t.kind = 'pay_out' AND t.debit_account_id = a.id) AS paid_out_cents,
             max(t.created_at) AS last_booked_at
        FROM ledger_accounts a
        JOIN ledger_entries e ON e.account_id = a.id
        JOIN ledger_transfers t ON t.id = e.transfer_id
       WHERE a.code = 'exchange:' || x.application_id
  ) m ON true
 WHERE x.application_id > $1
 ORDER BY x.application_id
 LIMIT $2"""

# Exchange accounts of the ledger that no read-model row explains.
_LEDGER_ORPHANS_SQL = """
SELECT a.exchange_id, a.code, a.credits_pending, a.credits_posted
  FROM ledger_accounts a
 WHERE a.kind = 'exchange' AND a.exchange_id > $1 AND a.created_at < $3
   AND NOT EXISTS (SELECT 1 FROM exchanges x WHERE x.application_id = a.exchange_id)
 ORDER BY a.exchange_id
 LIMIT $2"""

# One page of the read model with its payment order, the order's two transfers and the ledger's pay-outs.
_ORDERS_PAGE_SQL = """
SELECT x.application_id, x.stage, o.payment_order_id, o.amount_cents AS order_cents, o.confirmed_at,
       pt.kind::text AS post_kind, pt.amount_cents AS post_cents, pc.exchange_id AS post_exchange,
       yt.kind::text AS payout_kind, yt.amount_cents AS payout_cents, yd.exchange_id AS payout_exchange,
       coalesce((SELECT sum(t.amount_cents) FROM ledger_accounts a
                   JOIN ledger_entries e ON e.account_id = a.id
                   JOIN ledger_transfers t ON t.id = e.transfer_id
                  WHERE a.code = 'exchange:' || x.application_id AND t.kind = 'pay_out' AND t.debit_account_id = a.id),
                0) AS paid_out_cents,
       greatest(x.updated_at, o.created_at, o.confirmed_at) >= $3 AS recent
  FROM exchanges x
  LEFT JOIN payment_orders o ON o.application_id = x.application_id
  LEFT JOIN ledger_transfers pt ON pt.id = o.post_transfer_id
  LEFT JOIN ledger_accounts pc ON pc.id = pt.credit_account_id
  LEFT JOIN ledger_transfers yt ON yt.id = o.payout_transfer_id
  LEFT JOIN ledger_accounts yd ON yd.id = yt.debit_account_id
 WHERE x.application_id > $1
 ORDER BY x.application_id
 LIMIT $2"""

# Payment orders that no read-model row explains.
_ORPHAN_ORDERS_SQL = """
SELECT o.application_id, o.payment_order_id, o.amount_cents
  FROM payment_orders o
 WHERE o.application_id > $1 AND o.created_at < $3
   AND NOT EXISTS (SELECT 1 FROM exchanges x WHERE x.application_id = o.application_id)
 ORDER BY o.application_id
 LIMIT $2"""

# One page of the read model for the workflow comparison, with the run that claimed each application id.
_WORKFLOW_PAGE_SQL = """
SELECT x.application_id, x.stage, x.grant_cents, x.updated_at, r.run_id, x.updated_at >= $3 AS recent
  FROM exchanges x
  LEFT JOIN exchange_runs r ON r.application_id = x.application_id
 WHERE x.application_id > $1
 ORDER BY x.application_id
 LIMIT $2"""

_INSERT_SQL = """
INSERT INTO reconciliation_findings (run_id, kind, application_id, expected, found, finding_key)
SELECT $1, f.kind, f.application_id, f.expected, f.found, f.finding_key
  FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
       AS f(kind, application_id, expected, found, finding_key)
ON CONFLICT (run_id, finding_key) DO NOTHING
RETURNING finding_key"""

TERMINAL = frozenset({"PAID", "INELIGIBLE", "REJECTED", "EXPIRED", "LAPSED", "WITHDRAWN", "CANCELLED", "FORFEITED"})


def finding(kind: FindingKind, application_id: str | None, expected: str, found: str) -> Finding:
    """A finding with its texts cut to the column's limit (a breach can quote many ids)."""
    return Finding(kind=kind, application_id=application_id, expected=expected[:_TEXT_LIMIT], found=found[:_TEXT_LIMIT])


def cents(amount: int | None) -> str:
    return "none" if amount is None else f"{amount} cents"


# (a) pages of the read model for the workflow comparison -------------------------------------------------


async def workflow_page(conn: DbConnection, after: str, limit: int, cutoff: datetime) -> list[asyncpg.Record]:
    """Up to `limit` read-model rows after `after`: id, stage, grant, last written, claimed run id, and whether
    it moved since `cutoff`."""
    return await conn.fetch(_WORKFLOW_PAGE_SQL, after, limit, cutoff)


async def rows_present(conn: DbConnection, application_ids: Sequence[str]) -> set[str]:
    """The ids among `application_ids` that have a read-model row."""
    rows = await conn.fetch(
        "SELECT application_id FROM exchanges WHERE application_id = ANY($1::text[])", application_ids
    )
    return {row["application_id"] for row in rows}


# (b) the read model against the ledger -------------------------------------------------------------------


async def ledger_page(
    conn: DbConnection, after: str, limit: int, cutoff: datetime
) -> tuple[int, list[Finding], str | None]:
    """Compare one page of exchanges with their ledger accounts: (rows read, findings, last id or None at the end)."""
    rows = await conn.fetch(_LEDGER_PAGE_SQL, after, limit, cutoff)
    found: list[Finding] = []
    for row in rows:
        if row["recent"]:
            continue
        app_id = row["application_id"]
        if row["held_cents"] != row["open_held_cents"]:
            found.append(
                finding(
                    FindingKind.LEDGER_HELD,
                    app_id,
                    f"open holds of {cents(row['held_cents'])} (read model, stage {row['stage']})",
                    f"the ledger holds {cents(row['open_held_cents'])} for exchange:{app_id}",
                )
            )
        if row["paid_cents"] != row["paid_out_cents"]:
            found.append(
                finding(
                    FindingKind.LEDGER_PAID,
                    app_id,
                    f"paid out {cents(row['paid_cents'])} (read model, stage {row['stage']})",
                    f"the ledger paid out {cents(row['paid_out_cents'])} from exchange:{app_id}",
                )
            )
        if row["posted_cents"] != row["paid_out_cents"]:
            found.append(
                finding(
                    FindingKind.LEDGER_POSTED,
                    app_id,
                    f"posted to exchange:{app_id} equals paid out of it ({cents(row['paid_out_cents'])})",
                    f"posted {cents(row['posted_cents'])}",
                )
            )
    return len(rows), found, rows[-1]["application_id"] if len(rows) == limit else None


async def ledger_orphans(
    conn: DbConnection, after: str, limit: int, cutoff: datetime
) -> tuple[int, list[Finding], str | None]:
    """Exchange accounts without a read-model row, one page."""
    rows = await conn.fetch(_LEDGER_ORPHANS_SQL, after, limit, cutoff)
    found = [
        finding(
            FindingKind.LEDGER_ORPHAN,
            row["exchange_id"],
            f"a read-model row for the exchange of ledger account {row['code']}",
            f"none (the account was credited {row['credits_pending']} cents pending, {row['credits_posted']} posted)",
        )
        for row in rows
    ]
    return len(rows), found, rows[-1]["exchange_id"] if len(rows) == limit else None


# (c) payment orders against the ledger and the stage -----------------------------------------------------


async def orders_page(
    conn: DbConnection, after: str, limit: int, cutoff: datetime
) -> tuple[int, list[Finding], str | None]:
    """Compare one page of exchanges with their payment orders and the order's transfers."""
    rows = await conn.fetch(_ORDERS_PAGE_SQL, after, limit, cutoff)
    found: list[Finding] = []
    for row in rows:
        if not row["recent"]:
            found += _order_findings(row)
    return len(rows), found, rows[-1]["application_id"] if len(rows) == limit else None


def _order_findings(row: asyncpg.Record) -> list[Finding]:
    app_id, stage, order_id = row["application_id"], row["stage"], row["payment_order_id"]
    if order_id is None:
        if stage == "PAID" or row["paid_out_cents"] > 0:
            return [
                finding(
                    FindingKind.PAYMENT_ORDER_MISSING,
                    app_id,
                    f"a payment order (stage {stage}, the ledger paid out {cents(row['paid_out_cents'])})",
                    "no payment order",
                )
            ]
        return []
    found: list[Finding] = []
    confirmed = row["confirmed_at"] is not None
    expected_stage = "PAID" if confirmed else "PAYMENT"
    if stage != expected_stage:
        state = "confirmed" if confirmed else "unconfirmed"
        found.append(
            finding(
                FindingKind.PAYMENT_ORDER_STAGE,
                app_id,
                f"stage {expected_stage} for {state} order {order_id}",
                f"stage {stage}",
            )
        )
    amount = row["order_cents"]
    ledger_side = {
        "post transfer": (row["post_kind"], row["post_cents"], row["post_exchange"], "post"),
        "pay-out transfer": (row["payout_kind"], row["payout_cents"], row["payout_exchange"], "pay_out"),
    }
    for name, (kind, booked, exchange, wanted) in ledger_side.items():
        if (kind, booked, exchange) != (wanted, amount, app_id):
            shown = "missing" if kind is None else f"a {kind} of {cents(booked)} on exchange:{exchange}"
            found.append(
                finding(
                    FindingKind.PAYMENT_ORDER_LEDGER,
                    app_id,
                    f"order {order_id}'s {name}: a {wanted} of {cents(amount)} on exchange:{app_id}",
                    shown,
                )
            )
    if row["paid_out_cents"] != amount:
        found.append(
            finding(
                FindingKind.PAYMENT_ORDER_LEDGER,
                app_id,
                f"the ledger pays out order {order_id}'s {cents(amount)} from exchange:{app_id}",
                f"paid out {cents(row['paid_out_cents'])}",
            )
        )
    return found


async def orphan_orders(
    conn: DbConnection, after: str, limit: int, cutoff: datetime
) -> tuple[int, list[Finding], str | None]:
    """Payment orders without a read-model row, one page."""
    rows = await conn.fetch(_ORPHAN_ORDERS_SQL, after, limit, cutoff)
    found = [
        finding(
            FindingKind.PAYMENT_ORDER_STAGE,
            row["application_id"],
            f"an exchange in stage PAYMENT or PAID for order {row['payment_order_id']} of {cents(row['amount_cents'])}",
            "no read-model row",
        )
        for row in rows
    ]
    return len(rows), found, rows[-1]["application_id"] if len(rows) == limit else None


# (d) the ledger's own invariants -------------------------------------------------------------------------


def invariant_findings(report: CheckReport) -> list[Finding]:
    """One finding per breach listed by ledger/checks.py, and one saying how many more were not listed."""
    found: list[Finding] = []
    for check in report.checks:
        if check.ok:
            continue
        found += [
            finding(FindingKind.LEDGER_INVARIANT, None, check.description, f"{check.name}: {breach}")
            for breach in check.breaches
        ]
        if check.breach_count > len(check.breaches):
            more = check.breach_count - len(check.breaches)
            found.append(finding(FindingKind.LEDGER_INVARIANT, None, check.description, f"{check.name}: {more} more"))
    return found


# The findings table --------------------------------------------------------------------------------------


def _key(item: Finding) -> str:
    text = "\x1f".join((item.kind.value, item.application_id or "", item.expected, item.found))
    return hashlib.sha256(text.encode()).hexdigest()


async def record_findings(conn: DbConnection, run_id: str, findings: Sequence[Finding]) -> list[Finding]:
    """Write the findings of one page for `run_id`; return those not written before (a retry writes none)."""
    if not findings:
        return []
    by_key = {_key(item): item for item in findings}
    rows = await conn.fetch(
        _INSERT_SQL,
        run_id,
        [item.kind.value for item in by_key.values()],
        [item.application_id for item in by_key.values()],
        [item.expected for item in by_key.values()],
        [item.found for item in by_key.values()],
        list(by_key),
    )
    return [by_key[row["finding_key"]] for row in rows]


async def findings_of(conn: DbConnection, run_id: str, limit: int) -> tuple[dict[FindingKind, int], list[Finding]]:
    """A run's count per kind and its first `limit` findings, in the order they were found."""
    counts = await conn.fetch(
        "SELECT kind, count(*) AS n FROM reconciliation_findings WHERE run_id = $1 GROUP BY kind ORDER BY kind", run_id
    )
    rows = await conn.fetch(
        """SELECT kind, application_id, expected, found FROM reconciliation_findings
            WHERE run_id = $1 ORDER BY id LIMIT $2""",
        run_id,
        limit,
    )
    listed = [
        Finding(
            kind=FindingKind(r["kind"]), application_id=r["application_id"], expected=r["expected"], found=r["found"]
        )
        for r in rows
    ]
    return {FindingKind(r["kind"]): r["n"] for r in counts}, listed
