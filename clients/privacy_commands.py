"""`cx privacy`: the retention schedule, and a person's data as one JSON document (issue 16, item 2).

`retention` prints schemas/retention.toml (the version in force: per category, where the data lives, the
period and the event it counts from, the lawful basis, and whether the engine can erase it today).
`export` gathers every row of the database that names a person (ledger/privacy.py) and writes it as JSON
to stdout or `--output FILE`: the answer to a subject access request (GDPR art. 15). `erase` erases a person
(art. 17) while the money trail stays (clients/erasure.py, ledger/erasure.py). Who: `cx` holds the
database's credentials, so whoever runs it acts as an officer; over HTTP only officers may export.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from pydantic import ValidationError

from clients.command import CommandFailed, console, fail, run
from clients.config import ClientConfig, client_config
from clients.erasure import ErasureReport, erase
from clients.exit_codes import ExitCode
from ledger.erasure import PersonStillParty
from ledger.expiry import DuePerson, due_for_erasure
from ledger.pool import connect_postgres
from ledger.privacy import ExportTooLarge, PersonalDataExport, export_person, person_from
from schemas.retention import retention_schedule

privacy_app = typer.Typer(no_args_is_help=True, help="Personal data: retention periods, exports and erasure.")


@privacy_app.command("retention")
def retention(as_json: Annotated[bool, typer.Option("--json", help="print the schedule as JSON")] = False) -> None:
    """Print the retention schedule in force: per category of personal data, where and how long it is kept.

    Example: cx privacy retention
    """
    schedule = retention_schedule()
    if as_json:
        sys.stdout.write(schedule.model_dump_json(indent=2) + "\n")
        return
    # One block per category rather than a table: the lawful bases are sentences, unreadable in narrow columns.
    console.print(f"retention schedule {schedule.version}, in force from {schedule.effective_from.isoformat()}")
    for category, rule in schedule.categories.items():
        console.print(f"\n{category.value}: {rule.period()} after {rule.counts_from.value.replace('_', ' ')}")
        console.print(f"  where:          {', '.join(rule.holds)}")
        console.print(f"  lawful basis:   {rule.lawful_basis}")
        console.print(f"  erasable today: {'yes' if rule.erasable_today else 'no'}")


async def _export(config: ClientConfig, identifiers: list[str], emails: list[str]) -> PersonalDataExport:
    try:
        person = person_from(identifiers, emails)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'person'}: {e['msg']}" for e in error.errors())
        raise CommandFailed(f"person: {problems}", ExitCode.USAGE) from None
    conn = await connect_postgres(config.database_url(), timeout_s=0)
    try:
        return await export_person(conn, person)
    except ExportTooLarge as error:
        raise CommandFailed(str(error), ExitCode.USAGE) from None
    finally:
        await conn.close()


@privacy_app.command("export")
def export(
    ctx: typer.Context,
    person: Annotated[
        list[str] | None,
        typer.Argument(help="the person's actor ids (submitted_by, reviewer or officer id, signatory)"),
    ] = None,
    email: Annotated[list[str] | None, typer.Option("--email", help="an e-mail address of the person")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="write the JSON here instead of stdout")] = None,
) -> None:
    """Print every row that names a person as one JSON document, each with its source table (GDPR art. 15).

    The person is known by their actor ids and/or e-mail addresses; each row that names any of them is
    included. The evidence files' records are included, not their bytes; Temporal histories and logs are
    not (the document says why). Reads only.

    Example: cx privacy export rev-anna --email anna@example.org --output anna.json
    """
    if not person and not email:
        raise fail("name the person: an actor id, or --email", ExitCode.USAGE)
    config = client_config(ctx)
    document = run(lambda: _export(config, list(person or []), list(email or [])))
    text = document.model_dump_json(indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    # The file holds personal data: readable by its owner only, from its creation on.
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    console.print(f"{len(document.items)} rows naming the person written to {output}")


async def _erase(
    config: ClientConfig, identifiers: list[str], emails: list[str], officer: str, reason: str
) -> ErasureReport:
    try:
        person = person_from(identifiers, emails)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'person'}: {e['msg']}" for e in error.errors())
        raise CommandFailed(f"person: {problems}", ExitCode.USAGE) from None
    pool = await asyncpg.create_pool(config.database_url(), min_size=1, max_size=2)
    try:
        temporal = await config.temporal_client()
        return await erase(pool, temporal, person.actor_ids(), person.addresses(), officer, reason)
    except PersonStillParty as error:
        raise CommandFailed(f"person: {error}", ExitCode.REFUSED) from None
    finally:
        await pool.close()


@privacy_app.command("erase")
def erase_command(
    ctx: typer.Context,
    person: Annotated[list[str] | None, typer.Argument(help="the person's actor ids")] = None,
    email: Annotated[list[str] | None, typer.Option("--email", help="an e-mail address of the person")] = None,
    by: Annotated[str, typer.Option("--by", help="the officer who erases (recorded)")] = "",
    reason: Annotated[str, typer.Option("--reason", help="why: the request's reference, or 'retention'")] = "",
) -> None:
    """Erase a person (GDPR art. 17): their data keys destroyed, their ids replaced by a pseudonym, the
    histories of their exchanges deleted; the ledger, amounts, dates and audit trail stay.

    Refused (exit 1) while the person is party to an open exchange. A repeat changes nothing.

    Example: cx privacy erase rev-anna --email anna@example.org --by officer-olga --reason "request DPO-2026-17"
    """
    if not person and not email:
        raise fail("name the person: an actor id, or --email", ExitCode.USAGE)
    if not by.strip() or not reason.strip():
        raise fail("--by and --reason: required (who erases, and why, are recorded)", ExitCode.USAGE)
    config = client_config(ctx)
    report = run(lambda: _erase(config, list(person or []), list(email or []), by.strip(), reason.strip()))
    result = report.erasure
    if result.already_erased:
        console.print("nothing names this person any more: already erased, or never known; nothing changed")
        return
    console.print(
        f"erased as {result.person_ref} at {result.erased_at:%Y-%m-%d %H:%M:%S} UTC: {result.keys_destroyed} key(s) "
        f"destroyed, {result.rows_pseudonymised} row(s) pseudonymised, "
        f"{len(report.histories_deleted)} history(ies) deleted"
    )
    for workflow_id, why in report.histories_kept.items():
        console.print(f"  history kept: {workflow_id}: {why}")


async def _expire(config: ClientConfig, officer: str, today: date, dry_run: bool) -> list[tuple[DuePerson, str]]:
    """The people due on `today`, each with what became of them ("due" in a dry run)."""
    pool = await asyncpg.create_pool(config.database_url(), min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            due = await due_for_erasure(conn, retention_schedule(), today)
        if dry_run or not due:
            return [(person, "due") for person in due]
        temporal = await config.temporal_client()
        outcomes: list[tuple[DuePerson, str]] = []
        for person in due:
            reason = f"retention: {person.category.value} period ended {person.expired_on.isoformat()}"
            try:
                report = await erase(pool, temporal, [person.person], [], officer, reason)
            except PersonStillParty as error:  # an exchange opened since the list was read
                outcomes.append((person, f"kept: {error}"))
                continue
            outcomes.append((person, f"erased as {report.erasure.person_ref}"))
        return outcomes
    finally:
        await pool.close()


@privacy_app.command("expire")
def expire_command(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="the officer who runs the expiry (recorded)")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list who is due, erase nobody")] = False,
    on: Annotated[
        str | None, typer.Option("--on", help="YYYY-MM-DD: who is due on that day (a later day: --dry-run only)")
    ] = None,
) -> None:
    """Erase everyone whose retention periods have all ended (schemas/retention.toml), as `erase` does.

    A person in any exchange is kept 10 years after the last one closed; a reviewer never assigned, 1 year
    after their record last changed; nobody party to an open exchange is due. Run it periodically.

    Example: cx privacy expire --by officer-olga --dry-run
    """
    today = datetime.now(UTC).date()
    try:
        day = today if on is None else date.fromisoformat(on)
    except ValueError:
        raise fail(f"--on {on!r}: a date as YYYY-MM-DD", ExitCode.USAGE) from None
    if day > today and not dry_run:
        raise fail(
            "--on: a later day than today only with --dry-run (nobody is erased before their time)", ExitCode.USAGE
        )
    if not dry_run and not by.strip():
        raise fail("--by: required (who erases is recorded)", ExitCode.USAGE)
    config = client_config(ctx)
    outcomes = run(lambda: _expire(config, by.strip(), day, dry_run))
    for person, outcome in outcomes:
        console.print(f"{person.person}: {person.category.value} ended {person.expired_on.isoformat()}: {outcome}")
    console.print(f"{len(outcomes)} person(s) due on {day.isoformat()}{' (dry run)' if dry_run else ''}")
