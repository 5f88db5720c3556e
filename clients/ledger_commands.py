"""The ledger's commands: `cx db migrate`, `cx ledger check`, `cx ledger history` and `cx budget`.

clients/cli.py mounts them (`db_app`, `ledger_app`, `budget`). Each command finds the database the
way every `cx` command does (DATABASE_URL, or the address a running `make run` recorded), prints a
table for people or JSON for scripts, and turns every expected failure into one line on stderr with
a code of the one table (clients/exit_codes.py):

  exit 0  done (for `ledger check`: every invariant holds)
  exit 1  REFUSED: `ledger check` found a breach
  exit 2  USAGE: a bad option (`--as-of`), a malformed DATABASE_URL
  exit 5  UNAVAILABLE: no database configured, unreachable, login refused, missing, or not migrated
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import asyncpg
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clients.command import describe_failure
from clients.config import client_config
from clients.exit_codes import ExitCode
from clients.money import format_eur
from ledger.checks import check_ledger
from ledger.errors import LedgerError
from ledger.migrate import MigrationChecksumMismatch, apply_migrations
from ledger.pool import ServerUnreachable, redact_dsn
from ledger.store import LedgerStore
from schemas.ledger import CheckReport, PartnershipBalance, Transfer

T = TypeVar("T")

EXIT_BREACH = ExitCode.REFUSED
CONNECT_TIMEOUT_S = 10.0  # an unreachable database fails the command in seconds, not minutes

db_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The database schema.")
ledger_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="The ledger: invariant checks and exchange histories."
)
_out = Console(highlight=False, soft_wrap=True)  # plain lines never wrap; tables still fit the terminal
_err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per error, never wrapped


# Commands ----------------------------------------------------------------------------------------------


@db_app.command("migrate")
def migrate(
    ctx: typer.Context,
    check_config: Annotated[
        bool,
        typer.Option("--check-config", help="check DATABASE_URL, print it (no password), exit 0 or 2"),
    ] = False,
) -> None:
    """Apply every SQL migration not yet applied (ledger, read model); running it twice is harmless.

    Example: DATABASE_URL=postgresql://cx@localhost:5432/cx cx db migrate
    """
    if check_config:
        _check_migrate_config(ctx)
    dsn = _database_url(ctx)

    async def main() -> list[str]:
        await _probe(dsn)
        return await apply_migrations(dsn)

    applied = _run(main, dsn)
    if applied:
        _out.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        _out.print("the database is up to date: no migration to apply")


@ledger_app.command("check")
def check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Verify the ledger's invariants on one snapshot and print each check; exit 1 on any breach.

    Checks: debits equal credits, entries match transfers, running balances, holds resolved at most
    once, no budget below zero, paid never above held, no open hold on a terminal exchange, and more.

    Example: cx ledger check
    """
    dsn = _database_url(ctx)

    async def main() -> CheckReport:
        async with _pool(dsn) as pool:
            return await check_ledger(pool)

    report = _run(main, dsn)
    if as_json:
        sys.stdout.write(json.dumps({"ok": report.ok, **report.model_dump(mode="json")}, indent=2) + "\n")
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_BREACH)


@ledger_app.command("history")
def history(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the transfers as JSON")] = False,
) -> None:
    """List every ledger transfer of one exchange, oldest first (holds, posts, voids, pay-outs).

    Example: cx ledger history APP-2025-0042
    """
    dsn = _database_url(ctx)

    async def main() -> list[Transfer]:
        async with _pool(dsn) as pool:
            return await LedgerStore(pool).exchange_history(application_id)

    transfers = _run(main, dsn)
    if as_json:
        sys.stdout.write(json.dumps([t.model_dump(mode="json", exclude={"replayed"}) for t in transfers], indent=2))
        sys.stdout.write("\n")
        return
    if not transfers:
        _out.print(f"no ledger transfers for exchange {application_id} (nothing was ever held for it)")
        return
    table = Table(title=f"ledger history of exchange {application_id}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("booked at (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("debit -> credit", overflow="fold")
    table.add_column("idempotency key", overflow="fold")
    for t in transfers:
        table.add_row(
            str(t.id),
            t.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            t.kind.value if t.pending_id is None else f"{t.kind.value} #{t.pending_id}",
            format_cents(t.amount_cents),
            f"{t.debit_account} -> {t.credit_account}",
            t.idempotency_key,
        )
    _out.print(table)


def budget(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="an ISO 8601 instant with a UTC offset, e.g. 2025-03-01T12:00:00+01:00"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the balances as JSON")] = False,
) -> None:
    """Show each partnership's budget: allocated, held, paid and available (now, or as of an instant).

    Example: cx budget --as-of 2025-03-01T00:00:00Z --json
    """
    instant = _parse_instant(as_of) if as_of is not None else None
    dsn = _database_url(ctx)

    async def main() -> list[PartnershipBalance]:
        async with _pool(dsn) as pool:
            return await LedgerStore(pool).partnership_balances(as_of=instant)

    balances = _run(main, dsn)
    if as_json:
        document = {
            "as_of": instant.isoformat() if instant else None,
            "partnerships": [b.model_dump(mode="json") for b in balances],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    when = f"as of {instant.isoformat()}" if instant else "now"
    if not balances:
        _out.print(f"no partnership budgets {when} (nothing allocated yet)")
        return
    table = Table(title=f"partnership budgets {when}")
    table.add_column("partnership", overflow="fold")
    for column in ("allocated", "held", "paid", "available"):
        table.add_column(column, justify="right", no_wrap=True)
    for b in balances:
        table.add_row(
            b.partnership_id,
            format_cents(b.allocated_cents),
            format_cents(b.held_cents),
            format_cents(b.paid_cents),
            format_cents(b.available_cents),
        )
    table.add_row(
        "total",
        *(
            format_cents(sum(getattr(b, field) for b in balances))
            for field in ("allocated_cents", "held_cents", "paid_cents", "available_cents")
        ),
        style="bold",
    )
    _out.print(table)


# Output ------------------------------------------------------------------------------------------------


def format_cents(amount_cents: int) -> str:
    """12345678 -> '123,456.78 EUR' (clients/money.py: one style in every command)."""
    return format_eur(amount_cents)


def _print_report(report: CheckReport) -> None:
    table = Table(title=f"ledger checks at {report.checked_at.isoformat(timespec='seconds')}")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("what it verifies", overflow="fold")
    for result in report.checks:
        if result.skipped:
            verdict = "[yellow]skipped[/yellow]"
        elif result.ok:
            verdict = "[green]ok[/green]"
        else:
            verdict = f"[red]{result.breach_count} breach(es)[/red]"
        table.add_row(result.name, verdict, result.description)
    _out.print(table)
    for result in report.checks:
        if result.ok:
            continue
        _out.print(f"[red]breach[/red] {result.name}:")
        for breach in result.breaches:
            _out.print(f"  - {breach}")
        if result.breach_count > len(result.breaches):
            _out.print(f"  ... and {result.breach_count - len(result.breaches)} more")
    breached = [r.name for r in report.checks if not r.ok]
    if breached:
        _out.print(f"[red]{len(breached)} of {len(report.checks)} checks found breaches[/red]: {', '.join(breached)}")
    else:
        _out.print(f"[green]all {len(report.checks)} checks passed[/green]")


# Plumbing ----------------------------------------------------------------------------------------------


def _fail(message: str, code: ExitCode = ExitCode.UNAVAILABLE) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def _check_migrate_config(ctx: typer.Context) -> None:
    """`cx db migrate --check-config`: the database it would migrate, or the line naming what is wrong (exit 2),
    without connecting (the Kubernetes Job and the compose service are checked so in tests/deploy/)."""
    try:
        dsn = client_config(ctx).database_url()
    except (ServerUnreachable, ValueError) as error:  # unset (no `make run` either), or a malformed setting
        raise _fail(str(error), ExitCode.USAGE) from None
    if urlsplit(dsn).scheme not in ("postgres", "postgresql"):
        raise _fail(f"DATABASE_URL={redact_dsn(dsn)!r}: must be a postgresql:// URL", ExitCode.USAGE)
    _out.print("cx db migrate: configuration complete")
    _out.print(f"  postgres   {redact_dsn(dsn)}")
    raise typer.Exit(0)


def _database_url(ctx: typer.Context) -> str:
    try:
        return client_config(ctx).database_url()
    except ServerUnreachable as error:  # no DATABASE_URL and no `make run` running
        raise _fail(str(error)) from None
    except ValueError as error:  # a malformed setting, named by the message
        raise _fail(str(error), ExitCode.USAGE) from None


def _parse_instant(text: str) -> datetime:
    example = "2025-03-01T12:00:00+01:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--as-of {text!r}: not an ISO 8601 instant (example: {example})", ExitCode.USAGE) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(
            f"--as-of {text!r}: add a UTC offset so that the instant is unambiguous (example: {example})",
            ExitCode.USAGE,
        )
    return value


@asynccontextmanager
async def _pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, timeout=CONNECT_TIMEOUT_S)
    try:
        yield pool
    finally:
        await pool.close()


async def _probe(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    await conn.close()


def _run(factory: Callable[[], Awaitable[T]], dsn: str) -> T:
    """Run one async command; every expected failure becomes one line and its code (module docstring)."""
    where = redact_dsn(dsn)
    try:
        return asyncio.run(_await(factory))
    except LedgerError as error:
        raise _fail(str(error), describe_failure(error).code) from None
    except MigrationChecksumMismatch as error:
        # An applied migration's file was edited: the installation is inconsistent, which no retry fixes.
        raise _fail(str(error), ExitCode.INTERNAL) from None
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError, asyncpg.UndefinedObjectError):
        raise _fail(f"the ledger schema is missing in {where}: run `cx db migrate` first") from None
    except asyncpg.InvalidCatalogNameError:
        raise _fail(f"the database in {where} does not exist") from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as error:
        raise _fail(f"the database at {where} refused the login: {error}") from None
    except asyncpg.PostgresError as error:
        raise _fail(f"database error at {where}: {error.sqlstate} {error}", ExitCode.INTERNAL) from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as error:
        reason = str(error) or type(error).__name__
        raise _fail(f"cannot reach the database at {where}: {reason}") from None
    except ValueError as error:  # asyncpg's verdict on a malformed DATABASE_URL
        raise _fail(f"DATABASE_URL {where}: {error}", ExitCode.USAGE) from None
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None


async def _await(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()
