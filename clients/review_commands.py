"""`cx reviewers` (who may review) and `cx review` (what waits for whom): the REVIEW stage's CLI (issue 5).

Each command is a thin shell over the SQL-level functions of ledger/review.py, which the
REST API reuses: input is validated with the `Reviewer` contract before anything is written, and
errors are one red line on stderr with an exit code from clients/exit_codes.py (USAGE for a bad
field, NOT_FOUND for an unknown reviewer), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from pydantic import ValidationError
from rich.table import Table

from clients.command import CommandFailed, console, fail, run
from clients.config import client_config
from clients.exit_codes import ExitCode
from ledger.pool import connect_postgres
from ledger.review import (
    InboxItem,
    ReviewerLoad,
    UnknownReviewer,
    add_reviewer,
    get_reviewer,
    inbox,
    list_reviewers,
    set_unavailable,
)
from schemas.review import Reviewer, ReviewerRole

T = TypeVar("T")
reviewers_app = typer.Typer(no_args_is_help=True, help="Reviewers and programme officers: add, list, holidays.")
review_app = typer.Typer(no_args_is_help=True, help="The review stage: what waits for whom.")

# The option that sets each Reviewer field, so that a refusal names what the user typed.
_OPTION_OF_FIELD = {
    "reviewer_id": "--id",
    "name": "--name",
    "organisation_id": "--organisation",
    "country": "--country",
    "partnership_id": "--partnership",
    "roles": "--role",
    "conflicts": "--conflict",
}


def _with_connection(ctx: typer.Context, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on one connection to the configured database, in one transaction."""
    config = client_config(ctx)

    async def main() -> T:
        conn = await connect_postgres(config.database_url(), timeout_s=0)
        try:
            async with conn.transaction():
                return await work(conn)
        except UnknownReviewer as error:
            raise CommandFailed(str(error), ExitCode.NOT_FOUND) from None
        finally:
            await conn.close()

    return run(main)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "input"
        option = _OPTION_OF_FIELD.get(str(item["loc"][0])) if item["loc"] else None
        parts.append(f"{field} ({option}): {item['msg']}" if option else f"{field}: {item['msg']}")
    return "; ".join(parts)


def _parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r}: expected a day as YYYY-MM-DD", ExitCode.USAGE) from None


@reviewers_app.command("add")
def add(
    ctx: typer.Context,
    reviewer_id: Annotated[str, typer.Option("--id", help="the person's id (e.g. their login)")],
    name: Annotated[str, typer.Option("--name", help="full name")],
    organisation: Annotated[str, typer.Option("--organisation", help="the person's organisation id")],
    country: Annotated[str, typer.Option("--country", help="ISO 3166 alpha-2 code, e.g. DE")],
    partnership: Annotated[str, typer.Option("--partnership", help="the partnership the person reviews for")],
    roles: Annotated[
        list[ReviewerRole] | None,
        typer.Option("--role", case_sensitive=False, help="reviewer or programme_officer (repeat for both)"),
    ] = None,
    conflicts: Annotated[
        list[str] | None, typer.Option("--conflict", help="an organisation id with a conflict of interest (repeatable)")
    ] = None,
) -> None:
    """Add a reviewer or programme officer; adding an existing id updates that record (a holiday stays).

    Example: cx reviewers add --id anna --name Anna --organisation o1 --country SE --partnership P1 --role reviewer
    """
    try:
        reviewer = Reviewer.model_validate(
            {
                "reviewer_id": reviewer_id,
                "name": name,
                "organisation_id": organisation,
                "country": country,
                "partnership_id": partnership,
                "roles": [role.value for role in roles or []],
                "conflicts": conflicts or [],
            }
        )
    except ValidationError as error:
        raise fail(_describe(error), ExitCode.USAGE) from None
    created = _with_connection(ctx, lambda conn: add_reviewer(conn, reviewer))
    console.print(
        f"{'added' if created else 'updated'} reviewer {reviewer.reviewer_id}",
    )


@reviewers_app.command("list")
def list_command(
    ctx: typer.Context,
    partnership: Annotated[str | None, typer.Option("--partnership", help="only this partnership")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the records as JSON")] = False,
) -> None:
    """List reviewers and programme officers with their open load (open assignments).

    Example: cx reviewers list --partnership P1
    """
    reviewers: list[ReviewerLoad] = _with_connection(ctx, lambda conn: list_reviewers(conn, partnership))
    if as_json:
        records = [_as_json(r) for r in reviewers]
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if not reviewers:
        console.print(
            "no reviewers" + (f" in partnership {partnership}" if partnership else ""),
        )
        return
    table = Table("id", "name", "organisation", "country", "partnership", "roles", "conflicts", "unavailable until")
    table.add_column("open load", justify="right")
    for r in reviewers:
        table.add_row(
            r.reviewer_id,
            r.name,
            r.organisation_id,
            r.country,
            r.partnership_id,
            ", ".join(sorted(r.roles)),
            ", ".join(sorted(r.conflicts)),
            str(r.unavailable_until or ""),
            str(r.open_load),
        )
    console.print(table)


def _as_json(reviewer: ReviewerLoad) -> dict[str, Any]:
    # Sets have no order: sort them, so that the output is stable and diffable.
    record = reviewer.model_dump(mode="json")
    record["roles"] = sorted(record["roles"])
    record["conflicts"] = sorted(record["conflicts"])
    return record


@reviewers_app.command("set-unavailable")
def set_unavailable_command(
    ctx: typer.Context,
    reviewer_id: Annotated[str, typer.Argument(help="the reviewer's id")],
    until: Annotated[str | None, typer.Option("--until", help="last day away, YYYY-MM-DD (inclusive)")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="available again from now on")] = False,
) -> None:
    """Keep a reviewer out of new assignments up to and including a day (holidays), or --clear that.

    Example: cx reviewers set-unavailable anna --until 2024-08-31
    """
    if (until is None) == (not clear):
        raise fail("give exactly one of --until YYYY-MM-DD or --clear", ExitCode.USAGE)
    day = None if clear or until is None else _parse_day(until, "--until")
    _with_connection(ctx, lambda conn: set_unavailable(conn, reviewer_id, day))
    if day is None:
        console.print(
            f"reviewer {reviewer_id} is available",
        )
    else:
        console.print(
            f"reviewer {reviewer_id} is unavailable until {day} (inclusive)",
        )


@review_app.command("inbox")
def inbox_command(
    ctx: typer.Context,
    reviewer_id: Annotated[str, typer.Option("--as", help="the reviewer whose inbox to show")],
    as_json: Annotated[bool, typer.Option("--json", help="print the items as JSON")] = False,
) -> None:
    """List a reviewer's open assignments, oldest deadline first, from the read model.

    Example: cx review inbox --as anna
    """

    async def load(conn: asyncpg.Connection) -> list[InboxItem]:
        if await get_reviewer(conn, reviewer_id) is None:
            raise UnknownReviewer(reviewer_id)
        return await inbox(conn, reviewer_id)

    items = _with_connection(ctx, load)
    if as_json:
        sys.stdout.write(json.dumps([item.model_dump(mode="json") for item in items], indent=2) + "\n")
        return
    if not items:
        console.print(
            f"nothing waits for {reviewer_id}",
        )
        return
    table = Table("application", "stage", "partnership", "assigned at", "due at")
    for item in items:
        table.add_row(
            item.application_id,
            item.stage or "(not yet projected)",
            item.partnership_id or "",
            item.assigned_at.isoformat(timespec="minutes"),
            item.due_at.isoformat(timespec="minutes"),
        )
    console.print(table)
