"""Dry run of a candidate policy over open exchanges: what would change, per exchange and per partnership.

Pure: no database, no clock, no Temporal. The caller (`cx policy simulate <file>`) reads the open
exchanges from Postgres into `SimulationCase`s, loads the candidate with `load_policy_file`, and prints
`simulate(cases, candidate).render_text()` (or the report's JSON). Nothing is changed anywhere.

Per exchange: the outcome and failing rules under the current policy (recomputed, to compare like with
like) and under the candidate, and the amount now (as recorded, else priced under the current policy)
against the amount under the candidate. Per partnership (the visitor's, R9): the total held now against
what those holds would be under the candidate, i.e. the candidate's amount for each exchange that holds
money now and would stay eligible, and nothing for one that would become ineligible (its hold would be
released). Exchanges that hold nothing yet (before funding) show their amounts per exchange only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rules.pricing import format_eur, price
from rules.screening import screen
from schemas.exchange import ApplicationInput, RuleFailure
from schemas.policy import Policy

Outcome = Literal["eligible", "ineligible"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SimulationCase(_Model):
    """One open exchange as the read model knows it."""

    application: ApplicationInput
    current_policy: Policy = Field(description="the version the exchange runs under")
    submitted_on: date | None = Field(default=None, description="when given, the lead time (R13) is checked too")
    current_outcome: Outcome = Field(description="the screening outcome on record")
    current_amount_cents: int | None = Field(
        default=None, ge=0, description="the priced grant on record; None before funding priced it"
    )
    held_cents: int = Field(default=0, ge=0, description="what the ledger holds for it now")
    actual_end_date: date | None = Field(default=None, description="from a submitted report, for re-pricing")
    stage: str | None = Field(default=None, description="for display only, e.g. review or funding")


class ExchangeChange(_Model):
    """One exchange under its current policy and under the candidate."""

    application_id: str
    partnership_id: str
    stage: str | None
    outcome_now: Outcome
    outcome_candidate: Outcome
    failures_now: tuple[RuleFailure, ...] = Field(description="recomputed under the current policy")
    failures_candidate: tuple[RuleFailure, ...]
    amount_now_cents: int | None
    amount_now_recorded: bool = Field(description="false when priced here because nothing was on record")
    amount_candidate_cents: int | None = Field(description="None when ineligible under the candidate")
    breakdown_candidate: tuple[str, ...]
    held_now_cents: int
    held_candidate_cents: int
    outcome_changed: bool
    rules_changed: bool
    amount_changed: bool

    @property
    def changed(self) -> bool:
        return self.outcome_changed or self.rules_changed or self.amount_changed


class PartnershipTotals(_Model):
    """The visitor's partnership (R9): counts of changes and the total held now and under the candidate."""

    partnership_id: str
    exchanges: int
    becoming_ineligible: int
    becoming_eligible: int
    amount_changes: int
    held_now_cents: int
    held_candidate_cents: int

    @property
    def held_delta_cents(self) -> int:
        return self.held_candidate_cents - self.held_now_cents


class SimulationReport(_Model):
    """Every exchange evaluated (sorted by partnership, then application id) and the totals per partnership."""

    candidate_version: str
    exchanges: tuple[ExchangeChange, ...]
    partnerships: tuple[PartnershipTotals, ...]

    def changed_exchanges(self) -> tuple[ExchangeChange, ...]:
        return tuple(e for e in self.exchanges if e.changed)

    def render_text(self, *, show_unchanged: bool = False) -> str:
        """A plain-text report for a terminal: changes first, then partnership totals."""
        changed = self.changed_exchanges()
        lines = [
            f"Dry run of policy {self.candidate_version} over {len(self.exchanges)} open exchange(s): "
            f"{len(changed)} would change. Nothing was changed.",
        ]
        shown = self.exchanges if show_unchanged else changed
        if shown:
            lines += ["", "Exchanges:"]
            lines += [line for exchange in shown for line in _exchange_lines(exchange)]
        if not show_unchanged and len(changed) < len(self.exchanges):
            lines.append(f"  ({len(self.exchanges) - len(changed)} exchange(s) unchanged)")
        if self.partnerships:
            lines += ["", "Partnerships (held now -> held under the candidate):"]
            lines += [_partnership_line(p) for p in self.partnerships]
        return "\n".join(lines)


def simulate(cases: Sequence[SimulationCase], candidate: Policy) -> SimulationReport:
    """Evaluate every case under its current policy and under `candidate`; change nothing."""
    exchanges = sorted(
        (_evaluate(case, candidate) for case in cases), key=lambda e: (e.partnership_id, e.application_id)
    )
    return SimulationReport(
        candidate_version=candidate.version,
        exchanges=tuple(exchanges),
        partnerships=_totals(exchanges),
    )


def _evaluate(case: SimulationCase, candidate: Policy) -> ExchangeChange:
    app = case.application
    now = screen(app, case.current_policy, case.submitted_on)
    then = screen(app, candidate, case.submitted_on)
    outcome_candidate: Outcome = "eligible" if then.eligible else "ineligible"

    amount_now_cents = case.current_amount_cents
    recorded = amount_now_cents is not None
    if amount_now_cents is None and case.current_outcome == "eligible":
        amount_now_cents = price(app, case.current_policy, case.actual_end_date).amount_cents

    amount_candidate_cents: int | None = None
    breakdown: tuple[str, ...] = ()
    if then.eligible:
        priced = price(app, candidate, case.actual_end_date)
        amount_candidate_cents, breakdown = priced.amount_cents, priced.breakdown

    # A hold is re-priced only where there is one; one whose exchange would become ineligible is released.
    held_candidate_cents = 0
    if case.held_cents > 0 and amount_candidate_cents is not None:
        held_candidate_cents = amount_candidate_cents
    return ExchangeChange(
        application_id=app.application_id,
        partnership_id=app.visitor_partnership_id,
        stage=case.stage,
        outcome_now=case.current_outcome,
        outcome_candidate=outcome_candidate,
        failures_now=now.failures,
        failures_candidate=then.failures,
        amount_now_cents=amount_now_cents,
        amount_now_recorded=recorded,
        amount_candidate_cents=amount_candidate_cents,
        breakdown_candidate=breakdown,
        held_now_cents=case.held_cents,
        held_candidate_cents=held_candidate_cents,
        outcome_changed=outcome_candidate != case.current_outcome,
        rules_changed=_rule_keys(now.failures) != _rule_keys(then.failures),
        amount_changed=amount_candidate_cents != amount_now_cents,
    )


def _rule_keys(failures: Sequence[RuleFailure]) -> set[tuple[str, str]]:
    return {(f.rule, f.field) for f in failures}


def _totals(exchanges: Sequence[ExchangeChange]) -> tuple[PartnershipTotals, ...]:
    by_partnership: dict[str, list[ExchangeChange]] = {}
    for exchange in exchanges:
        by_partnership.setdefault(exchange.partnership_id, []).append(exchange)
    return tuple(
        PartnershipTotals(
            partnership_id=partnership_id,
            exchanges=len(group),
            becoming_ineligible=sum(e.outcome_changed and e.outcome_candidate == "ineligible" for e in group),
            becoming_eligible=sum(e.outcome_changed and e.outcome_candidate == "eligible" for e in group),
            # An exchange becoming (in)eligible is counted above, not again as an amount change.
            amount_changes=sum(e.amount_changed and not e.outcome_changed for e in group),
            held_now_cents=sum(e.held_now_cents for e in group),
            held_candidate_cents=sum(e.held_candidate_cents for e in group),
        )
        for partnership_id, group in sorted(by_partnership.items())
    )


def _money(amount_cents: int | None) -> str:
    return "none" if amount_cents is None else format_eur(amount_cents)


def _exchange_lines(exchange: ExchangeChange) -> list[str]:
    stage = f", {exchange.stage}" if exchange.stage else ""
    outcome = (
        f"{exchange.outcome_now} -> {exchange.outcome_candidate.upper()}"
        if exchange.outcome_changed
        else exchange.outcome_now
    )
    priced_here = "" if exchange.amount_now_recorded or exchange.amount_now_cents is None else " (priced now)"
    lines = [
        f"  {exchange.application_id} ({exchange.partnership_id}{stage}): {outcome}; "
        f"amount {_money(exchange.amount_now_cents)}{priced_here} -> {_money(exchange.amount_candidate_cents)}; "
        f"held {format_eur(exchange.held_now_cents)} -> {format_eur(exchange.held_candidate_cents)}"
    ]
    before = _rule_keys(exchange.failures_now)
    after = _rule_keys(exchange.failures_candidate)
    lines += [
        f"    + {f.rule} {f.field}: {f.message}" for f in exchange.failures_candidate if (f.rule, f.field) not in before
    ]
    lines += [
        f"    - {f.rule} {f.field}: no longer fails" for f in exchange.failures_now if (f.rule, f.field) not in after
    ]
    if exchange.amount_changed:
        lines += [f"    {line}" for line in exchange.breakdown_candidate]
    return lines


def _partnership_line(totals: PartnershipTotals) -> str:
    delta = totals.held_delta_cents
    sign = "+" if delta > 0 else ""
    return (
        f"  {totals.partnership_id}: {totals.exchanges} exchange(s), {totals.becoming_ineligible} becoming "
        f"ineligible, {totals.becoming_eligible} becoming eligible, {totals.amount_changes} amount change(s); "
        f"held {format_eur(totals.held_now_cents)} -> {format_eur(totals.held_candidate_cents)} "
        f"({sign}{format_eur(delta)})"
    )
