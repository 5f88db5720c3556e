"""`cx simulate programme`: the command, its Postgres, and the figures as a table, side by side for a what-if.

The scratch databases go on the Postgres that DATABASE_URL names (or the running `make run`'s); without either,
an embedded Postgres is started in a temporary directory for the run and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from clients.command import console, fail, run
from clients.exit_codes import ExitCode
from schemas.policy import DEFAULT_POLICY_VERSION, Policy, PolicyFileError, load_policy, load_policy_file
from schemas.simulation import DEFAULT_BEHAVIOUR, Behaviour, BehaviourFileError, load_behaviour
from workers.devstack import admin_dsn_or_embedded
from workers.process import settings_of
from workers.runtime import StackNotFound, resolve_database_url
from workers.simulation.figures import Figures, PartnershipFigures
from workers.simulation.report import write_kpi_report
from workers.simulation.run import SimulationError, run_programme

simulate_app = typer.Typer(no_args_is_help=True, help="Simulate the programme on the real engine (issue 17).")


def _eur(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _wait(f: PartnershipFigures) -> str:
    if f.waitlist_median_days is None:
        return "-"
    return f"{f.waitlist_median_days:g}/{f.waitlist_p90_days:g}"


def render(figures: Figures) -> str:
    head = f"{'partnership':<14}{'apps':>6}{'elig':>6}{'funded':>8}{'done':>6}{'paid':>6}"
    head += f"{'paid EUR':>15}{'left EUR':>15}{'forfeit':>9}{'wait d med/p90':>16}"
    lines = [
        f"programme simulation: seed {figures.seed}, policy {figures.policy_version}, "
        f"{figures.applications_planned} applications",
        head,
    ]
    for f in (*figures.partnerships, figures.total):
        lines.append(
            f"{f.partnership_id:<14}{f.applications:>6}{f.eligible:>6}{f.funded:>8}{f.completed:>6}{f.paid:>6}"
            f"{_eur(f.paid_cents):>15}{_eur(f.budget_left_cents):>15}{f.forfeits:>9}{_wait(f):>16}"
        )
    lines.append("outcomes: " + ", ".join(f"{stage} {n}" for stage, n in figures.total.outcomes.items()))
    ledger = figures.ledger
    lines.append(
        f"ledger check: {'clean' if ledger.ok else f'{ledger.breaches} breaches'}; paid {_eur(ledger.paid_cents)} EUR, "
        f"payouts {_eur(ledger.payouts_cents)} EUR ({'equal' if ledger.paid_matches_payouts else 'DIFFERENT'})"
    )
    lines.append(f"elapsed: {figures.elapsed_s:.1f} s")
    return "\n".join(lines)


def _clean(figures: Figures) -> str:
    return "clean" if figures.ledger.ok and figures.ledger.paid_matches_payouts else "BREACHED"


def render_side_by_side(base: Figures, candidate: Figures) -> str:
    lines = [
        f"what-if, seed {base.seed}: baseline policy {base.policy_version} | candidate {candidate.policy_version}",
        f"{'partnership':<14}{'funded':>13}{'paid EUR (base | cand)':>32}{'delta EUR':>14}"
        f"{'forfeits':>10}{'wait d med/p90':>20}{'left EUR (cand)':>17}",
    ]
    for b, c in zip((*base.partnerships, base.total), (*candidate.partnerships, candidate.total), strict=True):
        lines.append(
            f"{b.partnership_id:<14}{f'{b.funded} | {c.funded}':>13}"
            f"{f'{_eur(b.paid_cents)} | {_eur(c.paid_cents)}':>32}{_eur(c.paid_cents - b.paid_cents):>14}"
            f"{f'{b.forfeits} | {c.forfeits}':>10}{f'{_wait(b)} | {_wait(c)}':>20}{_eur(c.budget_left_cents):>17}"
        )
    lines.append(
        f"budget left: {_eur(base.total.budget_left_cents)} | {_eur(candidate.total.budget_left_cents)} EUR; "
        f"ledger check: {_clean(base)} | {_clean(candidate)}; "
        f"elapsed {base.elapsed_s:.1f} + {candidate.elapsed_s:.1f} s"
    )
    return "\n".join(lines)


def quiet_engine_logs() -> None:
    """The engine's alerts (escalations, missed SLAs) are figures here, not news: only errors are printed."""
    for name in ("temporalio", "activities", "workflows", "workers.main"):
        logging.getLogger(name).setLevel(logging.ERROR)


def embedded_or(configured: str | None) -> contextlib.AbstractContextManager[str]:
    """`configured` (an admin DSN), or an embedded Postgres in a temporary directory, stopped afterwards."""
    return admin_dsn_or_embedded(configured, "cx-sim-pg-")


async def simulate(
    behaviour: Behaviour, seed: int, candidate: Policy | None, admin_dsn: str, keep_database: bool,
    report_dir: Path | None = None,
) -> list[Figures]:  # fmt: skip
    """The baseline run, and the candidate's with the same seed when there is one (one after the other)."""
    runs = [load_policy(DEFAULT_POLICY_VERSION), *([candidate] if candidate else [])]
    results = []
    for label, policy in zip(("baseline", "candidate"), runs, strict=False):

        async def report(dsn: str, label: str = label) -> None:
            if report_dir is not None:
                for path in await write_kpi_report(dsn, report_dir, label):
                    console.print(f"KPI report: {path}", markup=False, highlight=False)

        figures, dsn = await run_programme(
            behaviour, seed=seed, policy=policy, admin_dsn=admin_dsn, keep_database=keep_database, report=report
        )
        if keep_database:
            console.print(f"kept database: {dsn}", markup=False, highlight=False)
        results.append(figures)
    return results


def programme(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="the random seed: the same seed gives the same figures")] = 1,
    applications: Annotated[int | None, typer.Option(help="applications (default: the behaviour file's)")] = None,
    policy: Annotated[Path | None, typer.Option(help="a candidate policy file: run both, side by side")] = None,
    behaviour_file: Annotated[Path, typer.Option("--behaviour", help="the behaviour model (TOML)")] = DEFAULT_BEHAVIOUR,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    keep_database: Annotated[bool, typer.Option(help="keep the scratch database(s) cx_sim_*")] = False,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="write the Commission's KPI report of each run (HTML with charts, CSV) here"),
    ] = None,
) -> None:
    """Run the whole programme on the time-skipping server with the real workflows, activities and ledger.

    With --report DIR, the KPI report of each run (`cx report kpis`' HTML and CSV) is written there.

    Example: cx simulate programme --seed 7 --applications 300 --policy candidate.toml --report out/
    """
    try:
        overrides = {"programme": {"applications": applications}} if applications is not None else None
        behaviour = load_behaviour(behaviour_file, overrides)
        candidate = load_policy_file(policy) if policy is not None else None
    except (BehaviourFileError, PolicyFileError) as error:
        raise fail(str(error), ExitCode.USAGE) from None
    settings = settings_of(ctx)
    try:
        configured: str | None = resolve_database_url(settings)
    except StackNotFound:
        configured = None
    quiet_engine_logs()
    with embedded_or(configured) as admin_dsn:
        try:
            results = run(lambda: simulate(behaviour, seed, candidate, admin_dsn, keep_database, report_dir))
        except SimulationError as error:
            raise fail(str(error), ExitCode.REFUSED) from None
    if as_json:
        payload = [f.model_dump(mode="json") for f in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else {"baseline": payload[0], "candidate": payload[1]}))
    elif len(results) == 1:
        console.print(render(results[0]), markup=False, highlight=False)
    else:
        console.print(render(results[0]) + "\n\n" + render(results[1]), markup=False, highlight=False)
        console.print("\n" + render_side_by_side(results[0], results[1]), markup=False, highlight=False)


simulate_app.command("programme")(programme)
