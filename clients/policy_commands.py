"""`cx policy`: the versions on file, and dry runs of a candidate policy over the open exchanges.

A dry run reads the read model (each open exchange's application as submitted, the policy version it
runs under, its grant and hold) and evaluates it under the candidate; it writes nothing anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from clients.command import CommandFailed, console, fail, run
from clients.config import client_config
from clients.exit_codes import ExitCode
from clients.input_files import InputRefused, read_text, shown_path
from ledger.pool import connect_postgres
from ledger.store import DbConnection
from rules.simulate import SimulationCase, SimulationReport, simulate
from schemas.exchange import ApplicationInput
from schemas.policy import PolicyFileError, UnknownPolicyVersion, known_versions, load_policy, load_policy_text
from schemas.stages import TERMINAL_STAGES, Stage

policy_app = typer.Typer(no_args_is_help=True, help="Programme policy: versions and dry runs.")
# Before screening has decided, an open exchange counts as eligible; simulate() recomputes anyway.
_UNSCREENED = {Stage.SUBMITTED.value, Stage.SCREENING.value}


async def open_cases(database_url: str) -> list[SimulationCase]:
    conn = await connect_postgres(database_url, timeout_s=0)
    try:
        return await load_open_cases(conn)
    except UnknownPolicyVersion as error:
        # An exchange runs under a version that is not on file: the installation lacks a policy file.
        raise CommandFailed(str(error), ExitCode.INTERNAL) from None
    finally:
        await conn.close()


async def load_open_cases(conn: DbConnection) -> list[SimulationCase]:
    """Every open exchange of the read model as a case to simulate (also `POST /policies/dry-run`)."""
    rows = await conn.fetch(
        """SELECT application, policy_version, grant_cents, held_cents, stage FROM exchanges
           WHERE stage <> ALL($1::text[]) AND application IS NOT NULL AND policy_version IS NOT NULL
           ORDER BY application_id""",
        [s.value for s in TERMINAL_STAGES],
    )
    cases = []
    for row in rows:
        application = ApplicationInput.model_validate_json(row["application"])
        cases.append(
            SimulationCase(
                application=application,
                current_policy=load_policy(row["policy_version"]),
                submitted_on=application.submitted_at.date() if application.submitted_at else None,
                current_outcome="eligible",
                current_amount_cents=row["grant_cents"],
                held_cents=row["held_cents"],
                stage=row["stage"] if row["stage"] not in _UNSCREENED else f"{row['stage']} (not yet screened)",
            )
        )
    return cases


@policy_app.command("simulate")
def simulate_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="the candidate policy file (TOML)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    show_unchanged: Annotated[bool, typer.Option("--all", help="also list exchanges that would not change")] = False,
) -> None:
    """Evaluate every open exchange under a candidate policy and print what would change; changes nothing.

    Example: cx policy simulate schemas/policies/clusterxchange-2022.1.toml --all
    """
    try:
        candidate = load_policy_text(read_text(path), path)
    except InputRefused as error:
        raise fail(str(error), ExitCode.USAGE) from None
    except PolicyFileError as error:
        # One line, as every refusal of `cx` (its str() lists the problems one per line).
        problems = "; ".join(f"{problem.field}: {problem.rule}" for problem in error.problems)
        raise fail(f"{shown_path(path)}: policy refused: {problems}", ExitCode.USAGE) from None
    except RecursionError:
        # tomllib parses nested arrays and tables by recursion: thousands of levels exhaust the stack.
        raise fail(f"{shown_path(path)}: not valid TOML (nested too deeply)", ExitCode.USAGE) from None
    config = client_config(ctx)
    cases = run(lambda: open_cases(config.database_url()))
    report: SimulationReport = simulate(cases, candidate)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        return
    console.print(f"{len(cases)} open exchange(s) evaluated under policy {candidate.version}; nothing was changed.")
    console.print(report.render_text(show_unchanged=show_unchanged))


@policy_app.command("versions")
def versions() -> None:
    """List the policy versions on file, with the day each takes effect.

    Example: cx policy versions
    """
    for version in known_versions():
        policy = load_policy(version)
        console.print(f"{policy.version}  in force from {policy.effective_from}  {policy.description}")
