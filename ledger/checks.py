"""The ledger's invariants, verified on one consistent snapshot: what `cx ledger check` and the
scheduled reconciliation run.

The database enforces what it can cheaply on every write (see ledger/migrations/0001_ledger.sql);
these checks re-derive everything else from the immutable transfers and entries, so a bug in a
function, a hand-edited row or a disabled trigger shows up as a named breach with the ids involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from schemas.ledger import CheckReport, CheckResult

MAX_BREACHES_LISTED = 20  # per check; the count covers them all

# Stages in which an exchange can never need its money again (schemas/stages.py: TERMINAL_STAGES).
TERMINAL_STAGES = ("PAID", "INELIGIBLE", "REJECTED", "EXPIRED", "LAPSED", "WITHDRAWN", "CANCELLED", "FORFEITED")


@dataclass(frozen=True)
class _Check:
    name: str
    description: str
    sql: str  # selects one text column, `breach`, one row per breach


# Every entry's movement: its totals minus the previous entry's of the same account (accounts start at
# zero). Entries of one account are in booking order by transfer id (see the migration).
_ENTRY_DELTAS = """
WITH deltas AS (
    SELECT e.account_id, e.transfer_id, e.created_at,
           e.debits_pending - coalesce(lag(e.debits_pending) OVER w, 0) AS d_debits_pending,
           e.debits_posted - coalesce(lag(e.debits_posted) OVER w, 0) AS d_debits_posted,
           e.credits_pending - coalesce(lag(e.credits_pending) OVER w, 0) AS d_credits_pending,
           e.credits_posted - coalesce(lag(e.credits_posted) OVER w, 0) AS d_credits_posted
      FROM ledger_entries e
    WINDOW w AS (PARTITION BY e.account_id ORDER BY e.transfer_id)
)"""

_CHECKS: tuple[_Check, ...] = (
    _Check(
        "debits_equal_credits",
        "Summed over all accounts, debits equal credits, pending and posted.",
        """
SELECT format('pending: debits %s vs credits %s; posted: debits %s vs credits %s',
              sum(debits_pending), sum(credits_pending), sum(debits_posted), sum(credits_posted)) AS breach
  FROM ledger_accounts
HAVING sum(debits_pending) <> sum(credits_pending) OR sum(debits_posted) <> sum(credits_posted)""",
    ),
    _Check(
        "transfers_balance",
        "Each transfer's entries move debits and credits by the same amounts, pending and posted.",
        _ENTRY_DELTAS
        + """
SELECT format('transfer #%s: entries move debits pending %s / posted %s but credits pending %s / posted %s',
              transfer_id, sum(d_debits_pending), sum(d_debits_posted), sum(d_credits_pending),
              sum(d_credits_posted)) AS breach
  FROM deltas
 GROUP BY transfer_id
HAVING sum(d_debits_pending) <> sum(d_credits_pending) OR sum(d_debits_posted) <> sum(d_credits_posted)
 ORDER BY transfer_id""",
    ),
    _Check(
        "entries_match_transfers",
        "Every transfer has one entry on its debit and one on its credit account, none elsewhere, each "
        "moving the totals exactly as the transfer's kind and amount say, at the transfer's instant.",
        _ENTRY_DELTAS  # noqa: S608 - constant SQL, no input
        + """,
expected AS (
    SELECT t.id AS transfer_id, sides.account_id, sides.side, t.created_at,
           CASE t.kind WHEN 'hold' THEN t.amount_cents WHEN 'post' THEN -h.amount_cents
                       WHEN 'void' THEN -h.amount_cents ELSE 0 END AS d_pending,
           CASE t.kind WHEN 'hold' THEN 0 WHEN 'void' THEN 0 ELSE t.amount_cents END AS d_posted
      FROM ledger_transfers t
      LEFT JOIN ledger_transfers h ON h.id = t.pending_id
     CROSS JOIN LATERAL (VALUES (t.debit_account_id, 'debit'), (t.credit_account_id, 'credit')) sides(account_id, side)
)
SELECT CASE
         WHEN d.transfer_id IS NULL
           THEN format('transfer #%s has no entry on its %s account #%s', x.transfer_id, x.side, x.account_id)
         WHEN x.transfer_id IS NULL
           THEN format('entry of account #%s for transfer #%s matches no side of such a transfer',
                       d.account_id, d.transfer_id)
         ELSE format('transfer #%s, %s account #%s: entry moves debits %s/%s credits %s/%s (pending/posted) '
                     'at %s; expected %s/%s %s/%s at %s', x.transfer_id, x.side, x.account_id,
                     d.d_debits_pending, d.d_debits_posted, d.d_credits_pending, d.d_credits_posted,
                     d.created_at, e_dp, e_dpo, e_cp, e_cpo, x.created_at)
       END AS breach
  FROM expected x
  FULL JOIN deltas d ON d.transfer_id = x.transfer_id AND d.account_id = x.account_id
 CROSS JOIN LATERAL (SELECT CASE WHEN x.side = 'debit' THEN x.d_pending ELSE 0 END AS e_dp,
                            CASE WHEN x.side = 'debit' THEN x.d_posted ELSE 0 END AS e_dpo,
                            CASE WHEN x.side = 'credit' THEN x.d_pending ELSE 0 END AS e_cp,
                            CASE WHEN x.side = 'credit' THEN x.d_posted ELSE 0 END AS e_cpo) e
 WHERE d.transfer_id IS NULL OR x.transfer_id IS NULL
    OR (d.d_debits_pending, d.d_debits_posted, d.d_credits_pending, d.d_credits_posted, d.created_at)
       IS DISTINCT FROM (e_dp, e_dpo, e_cp, e_cpo, x.created_at)
 ORDER BY coalesce(x.transfer_id, d.transfer_id)""",
    ),
    _Check(
        "running_balances",
        "Each account's last entry equals its running totals and entry instants never go back, so the "
        "balance of any account as of any past instant can be read from the entries.",
        """
SELECT format('%s: totals %s/%s/%s/%s (debits pending/posted, credits pending/posted) but its last entry '
              '(transfer #%s) says %s/%s/%s/%s', a.code, a.debits_pending, a.debits_posted, a.credits_pending,
              a.credits_posted, l.transfer_id, coalesce(l.debits_pending, 0), coalesce(l.debits_posted, 0),
              coalesce(l.credits_pending, 0), coalesce(l.credits_posted, 0)) AS breach
  FROM ledger_accounts a
  LEFT JOIN LATERAL (SELECT * FROM ledger_entries e WHERE e.account_id = a.id
                      ORDER BY e.transfer_id DESC LIMIT 1) l ON true
 WHERE (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
       IS DISTINCT FROM (coalesce(l.debits_pending, 0), coalesce(l.debits_posted, 0),
                         coalesce(l.credits_pending, 0), coalesce(l.credits_posted, 0))
UNION ALL
SELECT format('account #%s: entry for transfer #%s at %s is earlier than the entry before it (%s)',
              account_id, transfer_id, created_at, previous_at)
  FROM (SELECT e.account_id, e.transfer_id, e.created_at,
               lag(e.created_at) OVER (PARTITION BY e.account_id ORDER BY e.transfer_id) AS previous_at
          FROM ledger_entries e) ordered
 WHERE created_at < previous_at""",
    ),
    _Check(
        "holds_resolved_at_most_once",
        "Every post or void resolves an existing hold on the hold's own accounts, each hold at most once; "
        "a void releases the hold's amount and a post never exceeds it.",
        """
SELECT format('hold #%s is resolved %s times: %s', pending_id, count(*),
              string_agg(kind || ' #' || id, ', ' ORDER BY id)) AS breach
  FROM ledger_transfers WHERE pending_id IS NOT NULL
 GROUP BY pending_id HAVING count(*) > 1
UNION ALL
SELECT CASE
         WHEN h.id IS NULL THEN format('%s #%s resolves transfer #%s, which does not exist', r.kind, r.id, r.pending_id)
         WHEN h.kind <> 'hold' THEN format('%s #%s resolves transfer #%s, which is a %s, not a hold',
                                           r.kind, r.id, h.id, h.kind)
         WHEN (r.debit_account_id, r.credit_account_id) <> (h.debit_account_id, h.credit_account_id)
           THEN format('%s #%s resolves hold #%s but moves between other accounts', r.kind, r.id, h.id)
         WHEN r.kind = 'post' AND r.amount_cents > h.amount_cents
           THEN format('post #%s posts %s cents, above hold #%s of %s cents', r.id, r.amount_cents, h.id,
                       h.amount_cents)
         WHEN r.kind = 'void' AND r.amount_cents <> h.amount_cents
           THEN format('void #%s releases %s cents of hold #%s of %s cents', r.id, r.amount_cents, h.id,
                       h.amount_cents)
         ELSE format('%s #%s resolves hold #%s, booked after it', r.kind, r.id, h.id)
       END
  FROM ledger_transfers r
  LEFT JOIN ledger_transfers h ON h.id = r.pending_id
 WHERE r.pending_id IS NOT NULL
   AND (h.id IS NULL OR h.kind <> 'hold'
        OR (r.debit_account_id, r.credit_account_id) <> (h.debit_account_id, h.credit_account_id)
        OR (r.kind = 'post' AND r.amount_cents > h.amount_cents)
        OR (r.kind = 'void' AND r.amount_cents <> h.amount_cents)
        OR r.id < h.id)""",
    ),
    _Check(
        "no_budget_below_zero",
        "No budget or exchange account has spent more than it was given, counting pending holds "
        "(debits pending + posted <= credits posted), now or after any transfer.",
        """
SELECT format('%s: debits %s pending + %s posted exceed %s credits posted', code, debits_pending,
              debits_posted, credits_posted) AS breach
  FROM ledger_accounts
 WHERE debits_must_not_exceed_credits AND debits_pending + debits_posted > credits_posted
UNION ALL
SELECT format('%s after transfer #%s: debits %s pending + %s posted exceeded %s credits posted', a.code,
              e.transfer_id, e.debits_pending, e.debits_posted, e.credits_posted)
  FROM ledger_entries e
  JOIN ledger_accounts a ON a.id = e.account_id
 WHERE a.debits_must_not_exceed_credits AND e.debits_pending + e.debits_posted > e.credits_posted""",
    ),
    _Check(
        "paid_not_above_held",
        "For every exchange, paid out <= posted <= held (the holds those posts resolved).",
        """
WITH paid AS (
    SELECT debit_account_id AS account_id, sum(amount_cents) AS paid_cents
      FROM ledger_transfers WHERE kind = 'pay_out' GROUP BY debit_account_id
), posted AS (
    SELECT p.credit_account_id AS account_id, sum(p.amount_cents) AS posted_cents,
           sum(h.amount_cents) AS held_cents
      FROM ledger_transfers p JOIN ledger_transfers h ON h.id = p.pending_id
     WHERE p.kind = 'post' GROUP BY p.credit_account_id
)
SELECT format('%s: paid out %s cents, posted %s cents of holds totalling %s cents', a.code,
              coalesce(paid.paid_cents, 0), coalesce(posted.posted_cents, 0), coalesce(posted.held_cents, 0))
       AS breach
  FROM ledger_accounts a
  LEFT JOIN paid ON paid.account_id = a.id
  LEFT JOIN posted ON posted.account_id = a.id
 WHERE a.kind = 'exchange'
   AND (coalesce(paid.paid_cents, 0) > coalesce(posted.posted_cents, 0)
        OR coalesce(posted.posted_cents, 0) > coalesce(posted.held_cents, 0))""",
    ),
    _Check(
        "accounts_well_formed",
        "Account codes match their kind and ids; budgets and exchanges carry the no-overspend flag and "
        "nothing else does; one programme and one payouts account exist.",
        """
SELECT format('account #%s %s (%s, partnership %s, exchange %s, flag %s) is malformed', id, code, kind,
              coalesce(partnership_id, '-'), coalesce(exchange_id, '-'), debits_must_not_exceed_credits) AS breach
  FROM ledger_accounts
 WHERE ((kind IN ('programme', 'payouts') AND code = kind::text AND partnership_id IS NULL
         AND exchange_id IS NULL AND NOT debits_must_not_exceed_credits)
     OR (kind = 'budget' AND code = 'budget:' || partnership_id AND exchange_id IS NULL
         AND debits_must_not_exceed_credits)
     OR (kind = 'exchange' AND code = 'exchange:' || exchange_id AND partnership_id IS NOT NULL
         AND debits_must_not_exceed_credits)) IS NOT TRUE
UNION ALL
SELECT format('%s account(s) of kind %s, expected exactly 1', count(a.id), k.kind)
  FROM (VALUES ('programme'::ledger_account_kind), ('payouts'::ledger_account_kind)) k(kind)
  LEFT JOIN ledger_accounts a ON a.kind = k.kind
 GROUP BY k.kind HAVING count(a.id) <> 1""",
    ),
    _Check(
        "transfers_well_formed",
        "Every transfer moves money the way its kind allows (programme -> budget, budget -> exchange of "
        "the same partnership, exchange -> payouts) between existing accounts, and every re-hold's void "
        "has its new hold.",
        """
SELECT format('transfer #%s (%s): %s', t.id, t.kind, p.problem) AS breach
  FROM ledger_transfers t
  LEFT JOIN ledger_accounts d ON d.id = t.debit_account_id
  LEFT JOIN ledger_accounts c ON c.id = t.credit_account_id
 CROSS JOIN LATERAL (SELECT CASE
     WHEN d.id IS NULL THEN format('debit account #%s does not exist', t.debit_account_id)
     WHEN c.id IS NULL THEN format('credit account #%s does not exist', t.credit_account_id)
     WHEN (t.kind::text, d.kind::text, c.kind::text) NOT IN (('allocate', 'programme', 'budget'),
            ('hold', 'budget', 'exchange'), ('post', 'budget', 'exchange'), ('void', 'budget', 'exchange'),
            ('pay_out', 'exchange', 'payouts'))
       THEN format('moves %s -> %s', d.code, c.code)
     WHEN t.kind IN ('hold', 'post', 'void') AND c.partnership_id IS DISTINCT FROM d.partnership_id
       THEN format('moves %s -> %s, an exchange funded from budget:%s', d.code, c.code, c.partnership_id)
     WHEN (t.pending_id IS NOT NULL) <> (t.kind IN ('post', 'void'))
       THEN format('pending_id is %s', coalesce(t.pending_id::text, 'missing'))
     WHEN t.companion AND (t.kind <> 'void' OR NOT EXISTS (
            SELECT 1 FROM ledger_transfers n
             WHERE n.idempotency_key = t.idempotency_key AND NOT n.companion AND n.kind = 'hold'))
       THEN 'a re-hold void without its new hold'
     END AS problem) p
 WHERE p.problem IS NOT NULL""",
    ),
    _Check(
        "database_guards_in_place",
        "The triggers that make transfers and entries immutable, the no-overspend CHECK and the unique "
        "indexes behind idempotency and at-most-once resolution exist and are enabled.",
        """
SELECT format('trigger %s on %s is missing or disabled', v.name, v.tbl) AS breach
  FROM (VALUES ('ledger_transfers_immutable', 'ledger_transfers'), ('ledger_transfers_no_truncate', 'ledger_transfers'),
               ('ledger_entries_immutable', 'ledger_entries'), ('ledger_entries_no_truncate', 'ledger_entries'),
               ('ledger_accounts_identity_immutable', 'ledger_accounts'),
               ('ledger_accounts_no_delete', 'ledger_accounts'),
               ('ledger_accounts_no_truncate', 'ledger_accounts')) v(name, tbl)
 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                    WHERE g.tgname = v.name AND g.tgrelid = to_regclass(v.tbl) AND g.tgenabled <> 'D')
UNION ALL
SELECT 'CHECK constraint ledger_accounts_debits_within_credits is missing or not validated'
 WHERE NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'ledger_accounts_debits_within_credits'
                      AND conrelid = to_regclass('ledger_accounts') AND convalidated)
UNION ALL
SELECT format('unique index %s is missing or not valid', v.name)
  FROM (VALUES ('ledger_transfers_idempotency_key_uidx'), ('ledger_transfers_resolves_uidx')) v(name)
 WHERE NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indexrelid = to_regclass(v.name) AND i.indisunique AND i.indisvalid)""",
    ),
)

_TERMINAL_HOLD_CHECK = _Check(
    "no_open_hold_on_terminal_exchange",
    "No exchange in a terminal stage (" + ", ".join(TERMINAL_STAGES) + ") still has a pending hold.",
    """
SELECT format('exchange %s is %s but hold #%s of %s cents is still pending', x.application_id, x.stage, t.id,
              t.amount_cents) AS breach
  FROM ledger_transfers t
  JOIN ledger_accounts a ON a.id = t.credit_account_id AND a.kind = 'exchange'
  JOIN exchanges x ON x.application_id = a.exchange_id
 WHERE t.kind = 'hold'
   AND upper(x.stage) = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id)
 ORDER BY t.id""",
)


async def check_ledger(pool: asyncpg.Pool, *, max_breaches: int = MAX_BREACHES_LISTED) -> CheckReport:
    """Run every check on one snapshot (REPEATABLE READ, read-only) and report each one."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        checked_at = await conn.fetchval("SELECT now()")
        results = [await _run(conn, check, (), max_breaches) for check in _CHECKS]
        if await conn.fetchval("SELECT to_regclass('exchanges') IS NOT NULL"):
            results.append(await _run(conn, _TERMINAL_HOLD_CHECK, (list(TERMINAL_STAGES),), max_breaches))
        else:
            results.append(
                CheckResult(
                    name=_TERMINAL_HOLD_CHECK.name,
                    description=_TERMINAL_HOLD_CHECK.description
                    + " Skipped: the exchanges table (read model) does not exist in this database.",
                    ok=True,
                    skipped=True,
                )
            )
    return CheckReport(checked_at=checked_at, checks=tuple(results))


async def _run(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    check: _Check,
    args: tuple[object, ...],
    max_breaches: int,
) -> CheckResult:
    limit_param = f"${len(args) + 1}"
    rows = await conn.fetch(
        f"SELECT breach, count(*) OVER () AS breach_count FROM ({check.sql}) found LIMIT {limit_param}",  # noqa: S608 - constant checks, values as $n
        *args,
        max_breaches,
    )
    breach_count = rows[0]["breach_count"] if rows else 0
    return CheckResult(
        name=check.name,
        description=check.description,
        ok=breach_count == 0,
        breaches=tuple(row["breach"] for row in rows),
        breach_count=breach_count,
    )
