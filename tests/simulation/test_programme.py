"""A small programme (one partnership, 30 applications, a budget that runs short) on the time-skipping server with
the real worker: the ledger balances to the cent, the same seed gives the same figures, another seed others, and a
candidate policy is the one applied; the KPI report of a simulation agrees with its figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.kpis import KpiReport
from schemas.policy import load_policy, load_policy_text
from schemas.simulation import Behaviour, PartnershipModel, load_behaviour
from workers.simulation.figures import Figures
from workers.simulation.report import simulated_kpis
from workers.simulation.run import run_programme

BUDGET_CENTS = 12_000_00  # about a dozen lump sums for 30 applications: some wait, some expire


def small_programme() -> Behaviour:
    behaviour = load_behaviour(
        overrides={"programme": {"applications": 30, "months": 4, "arrival_weights": [1, 1, 1, 1]}}
    )
    partnership = PartnershipModel(
        partnership_id="photonics4i", name="Photonics4Industry", budget_cents=BUDGET_CENTS, weight=1.0
    )
    return behaviour.model_copy(update={"partnerships": (partnership,)})


def assert_balanced(figures: Figures) -> None:
    total = figures.total
    assert figures.ledger.ok, figures.ledger
    assert figures.ledger.paid_matches_payouts, figures.ledger
    assert figures.ledger.paid_cents == total.paid_cents  # read model and ledger agree to the cent
    assert total.budget_cents == BUDGET_CENTS
    assert total.budget_left_cents + total.paid_cents == BUDGET_CENTS  # no hold left open: every exchange ended
    assert sum(total.outcomes.values()) == total.applications == 30
    assert total.paid == total.outcomes.get("PAID", 0)


def comparable(figures: Figures) -> dict[str, object]:
    return figures.model_dump(exclude={"elapsed_s"})


@pytest.mark.timeout(240)  # three runs of a few hundred workflow-days each; a test of the model, not of speed
async def test_the_ledger_balances_and_the_seed_reproduces_the_figures(pg_admin_dsn: str) -> None:
    behaviour, policy = small_programme(), load_policy()
    first, _ = await run_programme(behaviour, seed=11, policy=policy, admin_dsn=pg_admin_dsn)
    assert_balanced(first)
    assert first.total.paid > 0
    assert first.total.waitlisted > 0, "the small budget should make some exchanges wait"
    again, _ = await run_programme(behaviour, seed=11, policy=policy, admin_dsn=pg_admin_dsn)
    assert comparable(again) == comparable(first)
    other, _ = await run_programme(behaviour, seed=12, policy=policy, admin_dsn=pg_admin_dsn)
    assert_balanced(other)
    assert comparable(other) != comparable(first)


async def test_a_candidate_policy_is_the_one_applied(pg_admin_dsn: str, tmp_path: Path) -> None:
    """What-if: the same seed under a candidate that caps the lump sum at 500 EUR pays no exchange more than that."""
    shipped = (Path(__file__).parents[2] / "schemas/policies/clusterxchange-2022.1.toml").read_text()
    text = shipped.replace('version = "2022.1"', 'version = "2022.1-cap500"').replace(
        "lump_sum_cap_cents = 110000", "lump_sum_cap_cents = 50000"
    )
    candidate = load_policy_text(text, tmp_path / "candidate.toml")
    reports: list[KpiReport] = []

    async def kpis(dsn: str) -> None:
        reports.append(await simulated_kpis(dsn))

    figures, _ = await run_programme(small_programme(), seed=11, policy=candidate, admin_dsn=pg_admin_dsn, report=kpis)
    assert_balanced(figures)
    # The Commission's report of the simulated programme (ledger/kpis.py) agrees with the simulation's figures.
    [report] = reports
    assert (report.total.applied, report.total.paid) == (figures.total.applications, figures.total.paid)
    assert report.total.paid_to_date_cents == figures.total.paid_cents
    assert figures.policy_version == "2022.1-cap500"
    assert figures.total.paid > 0
    assert figures.total.paid_cents <= 50000 * figures.total.paid
