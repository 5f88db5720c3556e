"""The plumbing every `cx` command shares: its configuration, the engine's client, running async work, and failing well.

- Every expected failure is one line on stderr (`error: <field or thing>: <rule>`) and an exit code from
  clients/exit_codes.py, never a traceback; `describe_failure` is the one table from exception to code.
- `run` runs a command's async work on an event loop of its own and turns its failures into that line.
- `execute` runs the typer app without click's standalone mode, so that usage errors (an unknown
  `--stage`, a missing argument) are the same one line, with exit code USAGE, and returns the exit code;
  the entry point (workers/cli.py) then drops the process's Temporal runtime before the interpreter
  exits, which is what keeps short-lived commands from aborting at exit (workers/connect.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

# Typer 0.29 vendors click and exports only BadParameter; the usage errors it raises are these classes.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from clients.client import (
    DecisionRefused,
    DuplicateApplication,
    ExchangeClient,
    ExchangeClientError,
    ExchangeNotFound,
    InvalidInput,
)
from clients.config import ClientConfig
from clients.exit_codes import ExitCode
from clients.money import InvalidAmount
from clients.payments import ConfirmationConflict, ConfirmationRefused
from ledger.errors import (
    AmountExceedsHold,
    BudgetExhausted,
    HoldAlreadyResolved,
    HoldNotFound,
    IdempotencyConflict,
    InvalidRequest,
    LedgerError,
    PayoutExceedsPosted,
    UnknownAccount,
)
from ledger.pool import ServerUnreachable
from schemas.errors import Refusal

T = TypeVar("T")

# soft_wrap: a line is never folded to the terminal's width, so an error stays one line for people and scripts.
# markup off: what is printed is data (ids, names, reasons people typed), shown exactly as recorded.
console = Console(highlight=False, soft_wrap=True, markup=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Failure:
    """An expected failure of a command: what to print and the exit code."""

    message: str
    code: ExitCode


class CommandFailed(Exception):
    """Raised inside a command's async work to end it with a message and an exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print one error line; return the Exit to raise (`raise fail(...) from None`)."""
    # People's text (ids, reasons) is never read as markup: `[x]` in a message prints as typed.
    errors.print(f"[red]error:[/red] {escape(one_line(message))}", markup=True)
    return typer.Exit(int(code))


def one_line(text: str) -> str:
    """`text` with every character that is not printable escaped (`\\n`, `\\x1b`, `\\ud800`).

    A message may quote input (a JSON key, a file name): a newline there would break the one-line rule,
    an escape sequence would reach the terminal, and a lone surrogate could not even be written out.
    """
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def one_of(allowed: Iterable[str]) -> Callable[[str], str]:
    """A typer callback refusing a value outside `allowed` as a usage error that lists them (exit USAGE).

    For arguments whose choices come from a registry (updates, signals); options over a fixed set use an
    Enum type instead, which click checks the same way.
    """
    choices = sorted(allowed)

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


async def exchange_client(config: ClientConfig) -> ExchangeClient:
    """A client on the process's Temporal runtime; a command tries once (timeout 0) and fails with UNAVAILABLE."""
    return ExchangeClient(await config.temporal_client(), config.task_queue)


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run one command's async work; every expected failure becomes one line and its exit code.

    The failure is raised outside the `except` block that caught it, so that no exception's frames keep a
    client (and with it the Temporal runtime's threads) alive until the entry point releases the runtime
    (workers/connect.py, issue 10 item 2).
    """
    outcome: tuple[T] | None = None
    failure: Failure | None = None
    try:
        outcome = (asyncio.run(_awaited(work)),)
    except KeyboardInterrupt:
        failure = Failure("interrupted", ExitCode.INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - the process's edge: any failure is one line and its exit code
        failure = describe_failure(error)
    if failure is not None:
        raise fail(failure.message, failure.code)
    assert outcome is not None
    return outcome[0]


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def describe_failure(error: BaseException) -> Failure:
    """The one table from an exception to its message and exit code (docs/operations.md, "Exit codes")."""
    message = str(error) or type(error).__name__
    code = _code_of(error)
    if code is ExitCode.INTERNAL:
        message = f"unexpected {type(error).__name__}: {message}"
    elif isinstance(error, _FILE_ERRORS):
        message = f"{error.filename}: {error.strerror or message}"
    elif isinstance(error, OSError | asyncpg.InterfaceError):
        message = f"cannot reach a server: {message}"
    elif isinstance(error, asyncpg.UndefinedTableError | asyncpg.UndefinedFunctionError):
        message = f"the database is not migrated ({message}): run `cx db migrate` first"
    return Failure(message, code)


# A file named on the command line that cannot be read is the caller's input, not a server being away.
_FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _code_of(error: BaseException) -> ExitCode:
    match error:
        case CommandFailed():
            return error.code
        case DecisionRefused():
            if error.refusal == Refusal.INVALID_INPUT:
                return ExitCode.USAGE
            if error.refusal in (Refusal.ALREADY_RECORDED, Refusal.DUPLICATE_APPLICATION):
                return ExitCode.CONFLICT
            return ExitCode.REFUSED
        case InvalidInput() | InvalidAmount() | ConfirmationRefused() | InvalidRequest():
            return ExitCode.USAGE
        case ExchangeNotFound() | UnknownAccount() | HoldNotFound():
            return ExitCode.NOT_FOUND
        case DuplicateApplication() | ConfirmationConflict() | IdempotencyConflict():
            return ExitCode.CONFLICT
        case BudgetExhausted() | HoldAlreadyResolved() | AmountExceedsHold() | PayoutExceedsPosted() | LedgerError():
            return ExitCode.REFUSED
        case ExchangeClientError():
            # What remains are the server's own answers (a query that failed, an RPC error): not the caller's fault.
            return ExitCode.UNAVAILABLE
        case FileNotFoundError() | PermissionError() | IsADirectoryError() | NotADirectoryError():
            return ExitCode.USAGE
        case ServerUnreachable() | OSError() | asyncpg.InterfaceError():
            return ExitCode.UNAVAILABLE
        case (
            asyncpg.UndefinedTableError()
            | asyncpg.UndefinedFunctionError()
            | asyncpg.InvalidCatalogNameError()
            | asyncpg.InvalidPasswordError()
            | asyncpg.InvalidAuthorizationSpecificationError()
            | asyncpg.CannotConnectNowError()
        ):
            return ExitCode.UNAVAILABLE
        case ValueError():
            return ExitCode.USAGE  # malformed settings or configuration, named by the message
        case _:
            return ExitCode.INTERNAL


def execute(app: typer.Typer) -> int:
    """Run the app and return its exit code from the table; usage errors become one line with exit code USAGE."""
    try:
        result = app(standalone_mode=False)
        code = int(result) if isinstance(result, int) else int(ExitCode.OK)
    except NoArgsIsHelpError as error:
        # `cx` or `cx ledger` alone: the help, and USAGE as click has it (a command was missing).
        error.show()
        code = int(ExitCode.USAGE)
    except ClickException as error:
        where, code = "", error.exit_code
        if isinstance(error, UsageError):
            where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            code = int(ExitCode.USAGE)
        # Typer checks Enum options through pydantic, whose "Value error, " prefix says nothing to a person.
        text = error.format_message().replace("Value error, ", "")
        errors.print(f"[red]error:[/red] {escape(one_line(text))}{where}", markup=True)
    except typer.Abort:
        code = int(ExitCode.INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - the process's edge, as in `run` above
        # A command that forgot to route a failure through `run`: still one line, never a traceback.
        failure = describe_failure(error)
        errors.print(f"[red]error:[/red] {escape(one_line(failure.message))}", markup=True)
        code = int(failure.code)
    return code
