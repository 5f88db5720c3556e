"""The simulation's figures, read from its own database (issue 17): per partnership and in total.

Counts come from the read model (`exchanges`, `audit_events`), money from the ledger's accounts: euros paid is
what each budget posted, budget left is its credits less everything posted or still held. The ledger check
(ledger/checks.py) runs on the same database, and `paid_matches_payouts` pairs the read model's paid cents with
the payouts account, to the cent. Waitlist times are whole days (workflow time) from an exchange's first
WAITLISTED event to the next stage it entered.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from ledger.checks import check_ledger

_EXCHANGES = """
    SELECT x.partnership_id,
           count(*) AS applications,
           count(*) FILTER (WHERE x.stage <> 'INELIGIBLE') AS eligible,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM audit_events a WHERE a.application_id = x.application_id
                                            AND a.stage = 'AGREEMENT')) AS funded,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM audit_events a WHERE a.application_id = x.application_id
                                            AND a.stage = 'REPORTING')) AS completed,
           count(*) FILTER (WHERE x.stage = 'PAID') AS paid,
           count(*) FILTER (WHERE x.stage = 'FORFEITED') AS forfeits,
           coalesce(sum(x.paid_cents), 0) AS read_model_paid_cents
      FROM exchanges x GROUP BY x.partnership_id"""
_STAGES = "SELECT partnership_id, stage, count(*) AS n FROM exchanges GROUP BY partnership_id, stage"
_BUDGETS = """
    SELECT partnership_id, credits_posted, debits_posted, debits_pending
      FROM ledger_accounts WHERE kind = 'budget'"""
_PAYOUTS = "SELECT coalesce(sum(credits_posted), 0) FROM ledger_accounts WHERE kind = 'payouts'"
_WAITS = """
    SELECT x.partnership_id, w.application_id,
           (SELECT min(n.at) FROM audit_events n
             WHERE n.application_id = w.application_id AND n.sequence > w.sequence
               AND n.stage NOT IN ('WAITLISTED', 'FUNDING')) - w.at AS waited
      FROM (SELECT DISTINCT ON (application_id) application_id, sequence, at FROM audit_events
             WHERE stage = 'WAITLISTED' ORDER BY application_id, sequence) w
      JOIN exchanges x ON x.application_id = w.application_id"""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartnershipFigures(_Model):
    partnership_id: str
    applications: int = 0
    eligible: int = 0
    funded: int = Field(default=0, description="reached AGREEMENT: funds were held")
    completed: int = Field(default=0, description="the stay took place: reached REPORTING")
    paid: int = 0
    paid_cents: int = 0
    budget_cents: int = 0
    budget_left_cents: int = 0
    forfeits: int = 0
    waitlisted: int = 0
    waitlist_median_days: float | None = None
    waitlist_p90_days: float | None = None
    outcomes: dict[str, int] = Field(default_factory=dict, description="exchanges per stage at the end")


class LedgerFigures(_Model):
    ok: bool
    breaches: int
    paid_cents: int = Field(description="the read model's paid cents, all exchanges")
    payouts_cents: int = Field(description="the ledger's payouts account")
    paid_matches_payouts: bool


class Figures(_Model):
    seed: int
    policy_version: str
    applications_planned: int
    partnerships: tuple[PartnershipFigures, ...]
    total: PartnershipFigures
    ledger: LedgerFigures
    elapsed_s: float = 0.0


def _days(waits: Sequence[float]) -> tuple[float | None, float | None]:
    if not waits:
        return None, None
    ordered = sorted(waits)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return round(statistics.median(ordered), 1), round(p90, 1)


async def read_figures(pool: asyncpg.Pool, partnership_ids: Sequence[str]) -> tuple[list[PartnershipFigures], int]:
    """Figures per partnership (in the given order), and the read model's paid cents in all."""
    rows = {r["partnership_id"]: r for r in await pool.fetch(_EXCHANGES)}
    budgets = {r["partnership_id"]: r for r in await pool.fetch(_BUDGETS)}
    outcomes: dict[str, dict[str, int]] = {}
    for r in await pool.fetch(_STAGES):
        outcomes.setdefault(r["partnership_id"], {})[r["stage"]] = r["n"]
    waits: dict[str, list[float]] = {}
    for r in await pool.fetch(_WAITS):
        if r["waited"] is not None:
            waits.setdefault(r["partnership_id"], []).append(r["waited"].total_seconds() / 86400)
    figures = []
    for pid in partnership_ids:
        row, budget = rows.get(pid), budgets.get(pid)
        median, p90 = _days(waits.get(pid, []))
        counts = (
            {k: row[k] for k in ("applications", "eligible", "funded", "completed", "paid", "forfeits")} if row else {}
        )
        figures.append(
            PartnershipFigures(
                partnership_id=pid,
                **counts,
                paid_cents=budget["debits_posted"] if budget else 0,
                budget_cents=budget["credits_posted"] if budget else 0,
                budget_left_cents=(budget["credits_posted"] - budget["debits_posted"] - budget["debits_pending"])
                if budget
                else 0,
                waitlisted=len(waits.get(pid, [])),
                waitlist_median_days=median,
                waitlist_p90_days=p90,
                outcomes=dict(sorted(outcomes.get(pid, {}).items())),
            )
        )
    return figures, sum(r["read_model_paid_cents"] for r in rows.values())


def totals(figures: Sequence[PartnershipFigures], all_waits: Sequence[float]) -> PartnershipFigures:
    outcomes: dict[str, int] = {}
    for f in figures:
        for stage, n in f.outcomes.items():
            outcomes[stage] = outcomes.get(stage, 0) + n
    median, p90 = _days(all_waits)
    summed = {
        k: sum(getattr(f, k) for f in figures)
        for k in (
            "applications",
            "eligible",
            "funded",
            "completed",
            "paid",
            "paid_cents",
            "budget_cents",
            "budget_left_cents",
            "forfeits",
            "waitlisted",
        )
    }
    return PartnershipFigures(
        partnership_id="total",
        **summed,
        waitlist_median_days=median,
        waitlist_p90_days=p90,
        outcomes=dict(sorted(outcomes.items())),
    )


async def programme_figures(
    pool: asyncpg.Pool, partnership_ids: Sequence[str], *, seed: int, policy_version: str, planned: int
) -> Figures:
    per_partnership, read_model_paid = await read_figures(pool, partnership_ids)
    all_waits = [r["waited"].total_seconds() / 86400 for r in await pool.fetch(_WAITS) if r["waited"] is not None]
    report = await check_ledger(pool)
    payouts = int(await pool.fetchval(_PAYOUTS))
    return Figures(
        seed=seed,
        policy_version=policy_version,
        applications_planned=planned,
        partnerships=tuple(per_partnership),
        total=totals(per_partnership, all_waits),
        ledger=LedgerFigures(
            ok=report.ok,
            breaches=sum(c.breach_count for c in report.checks),
            paid_cents=read_model_paid,
            payouts_cents=payouts,
            paid_matches_payouts=read_model_paid == payouts,
        ),
    )
