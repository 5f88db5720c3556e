"""`cx`'s client commands: what the back office, reviewers and ops do with the engine (submit, decide, status, ...).

The `cx` app itself, with the process commands (`cx worker`, `cx dispatcher`, `cx api`, `cx dev up`), is
workers/cli.py's: it mounts these with `mount` and hands each command its configuration through the typer
context (clients/config.py), so that nothing here reads the environment or imports workers
(docs/adr/0014-one-way-imports.md). Errors are one clear line on stderr and an exit code from
clients/exit_codes.py (documented in docs/operations.md), never a traceback; clients/command.py holds that
plumbing. Amounts are euros with two decimals for people (clients/money.py) and `*_cents` integers in every
`--json` output.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel

from clients.client import InvalidInput, parse
from clients.command import CommandFailed, console, exchange_client, fail, one_of, run
from clients.config import ClientConfig, client_config
from clients.exit_codes import ExitCode
from clients.input_files import InputRefused, parse_json, read_text, shown_path, with_lines
from clients.money import InvalidAmount, format_eur, format_optional_eur, parse_eur
from schemas.events import DeadlineKey
from schemas.exchange import ApplicationInput, ConfirmPaymentInput, ExchangeStatus
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import Stage

M = TypeVar("M", bound=BaseModel)

# A single top-up above the whole programme's budget (7,000,000 EUR, workers/seed.py) is a typo, not a decision.
MAX_TOP_UP_CENTS = 7_000_000_00
# The deadline each open stage waits on: shown even once it has passed, marked overdue (issue 10, item 4).
# Keys as the workflow names them in `status.deadlines` (schemas/events.py).
STAGE_DEADLINE = {
    Stage.REVIEW: DeadlineKey.REVIEW,
    Stage.WAITLISTED: DeadlineKey.WAITLIST,
    Stage.AGREEMENT: DeadlineKey.SIGNATURES,
    Stage.REPORTING: DeadlineKey.REPORT,
    Stage.PAYMENT: DeadlineKey.PAYMENT_SLA,
}


def top_up(
    ctx: typer.Context,
    partnership_id: Annotated[str, typer.Argument(help="the partnership whose budget grows (see `cx budget`)")],
    amount_eur: Annotated[str, typer.Argument(help="euros, at most two decimals, e.g. 25000 or 1250.50")],
    reference: Annotated[str, typer.Option("--reference", help="the decision's reference; makes a re-run book once")],
) -> None:
    """Top up a partnership's budget from the programme, then offer the money to its waitlist (oldest first).

    An unknown partnership, a malformed amount or an empty reference is refused before anything is booked.

    Example: cx top-up biginn 25000 --reference EISMEA-2023-014
    """
    from clients.budgets import partnership_known, partnerships
    from clients.budgets import top_up as book_top_up
    from ledger.pool import postgres_pool

    try:
        amount_cents = parse_eur(amount_eur, field="amount_eur", maximum_cents=MAX_TOP_UP_CENTS)
    except InvalidAmount as error:
        raise fail(str(error), ExitCode.USAGE) from None
    if not reference.strip() or len(reference) > 128:
        raise fail(f"--reference {reference!r}: 1 to 128 characters, not only spaces", ExitCode.USAGE)
    config = client_config(ctx)

    async def main() -> str:
        async with postgres_pool(config.database_url(), timeout_s=0, max_size=2) as pool:
            if not await partnership_known(pool, partnership_id):
                known = [p.partnership_id for p in await partnerships(pool)]
                shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") if known else "none yet"
                raise CommandFailed(
                    f"partnership_id {partnership_id!r}: no such partnership; known: {shown} "
                    "(`cx budget` lists them with their budgets); nothing was booked",
                    ExitCode.NOT_FOUND,
                )
            # Temporal is reached before booking, so that an unreachable server leaves the ledger untouched.
            client = await exchange_client(config)
            transfer = await book_top_up(
                pool,
                client,
                partnership_id=partnership_id,
                amount_cents=amount_cents,
                reference=reference,
            )
        done = "already booked" if transfer.replayed else "booked"
        return f"{done}: transfer {transfer.id}, {format_eur(amount_cents)} to {partnership_id}"

    console.print(run(main))


# A payload typed on the command line is small; the shell's own limit on arguments is about 2 MiB.
MAX_DATA_BYTES = 1024 * 1024


def _payload(model: type[M], data: str | None, file: Path | None) -> M:
    """The payload of `--data` or `--file` as `model`, read by clients/input_files.py's rules and validated
    strictly before anything is contacted; any refusal is one line naming `--data` or the file (and, for a
    field, its line)."""
    if (data is None) == (file is None):
        raise fail("give the payload with exactly one of --data '<json>' or --file <path>", ExitCode.USAGE)
    try:
        if file is not None:
            source, text = shown_path(file), read_text(file)
        else:
            assert data is not None
            source, text = "--data", data
            if len(text.encode("utf-8", "surrogatepass")) > MAX_DATA_BYTES:
                raise InputRefused(f"--data: over {MAX_DATA_BYTES:,} bytes; use --file")
        payload = parse_json(text, source)
    except InputRefused as error:
        raise fail(str(error), ExitCode.USAGE) from None
    if not isinstance(payload, dict):
        raise fail(f"{source}: the payload must be a JSON object ({{...}})", ExitCode.USAGE)
    try:
        return parse(model, payload)
    except InvalidInput as error:
        fields = with_lines(text, error.errors) if file is not None else [str(error)]
        raise fail(f"{source}: " + "; ".join(fields), ExitCode.USAGE) from None


def decide(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application id")],
    update: Annotated[
        str, typer.Argument(callback=one_of(UPDATES), help="the decision: " + ", ".join(sorted(UPDATES)))
    ],
    data: Annotated[str | None, typer.Option("--data", help="the payload as JSON")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="the payload from a JSON file")] = None,
    update_id: Annotated[
        str | None, typer.Option("--update-id", help="retry-safe: the same id is answered once")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status after the decision as JSON")] = False,
) -> None:
    """Record a person's decision (any update of the contract); a refusal prints the reason (exit 1, 2 or 4).

    Example: cx decide demo-01 submit_review --data '{"actor_id": "anna", "recommendation": "approve",
    "scores": {"relevance": 4, "agenda_quality": 4, "expected_impact": 5}}'
    """
    decision = _payload(UPDATES[update], data, file)
    config = client_config(ctx)

    async def main() -> ExchangeStatus:
        client = await exchange_client(config)
        return await client.decide(application_id, update, decision, update_id=update_id)

    result = run(main)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        console.print(f"{application_id}: {update} recorded; stage {result.stage.value}")


def signal_command(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application id")],
    name: Annotated[str, typer.Argument(callback=one_of(SIGNALS), help="the fact: " + ", ".join(sorted(SIGNALS)))],
    data: Annotated[str | None, typer.Option("--data", help="the payload as JSON")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="the payload from a JSON file")] = None,
) -> None:
    """Send a fact from another system (e.g. finance's payment confirmation) to an exchange.

    A payment confirmation is first checked against the recorded payment order: a repeat of the recorded
    one prints "already confirmed" and sends nothing (exit 0); another reference is a conflict (exit 4);
    another order id or amount is refused naming the field (exit 2).

    Example: cx signal demo-01 confirm_payment --data '{"payment_order_id": "po-demo-01",
    "amount_cents": 110000, "payment_reference": "SEPA-1", "confirmed_by": "finance"}'
    """
    message = _payload(SIGNALS[name], data, file)
    config = client_config(ctx)

    async def main() -> str:
        if isinstance(message, ConfirmPaymentInput):
            already = await _already_confirmed(config, application_id, message)
            if already is not None:
                return already
        client = await exchange_client(config)
        await client.signal(application_id, name, message)
        return f"{application_id}: {name} sent"

    console.print(run(main))


async def _already_confirmed(
    config: ClientConfig, application_id: str, confirmation: ConfirmPaymentInput
) -> str | None:
    """Check finance's confirmation against the order on record (clients/payments.py); None: send it.

    Raises ConfirmationRefused (wrong order or amount, nothing ordered yet) and ConfirmationConflict
    (already confirmed with another reference), which `run` turns into exit codes 2 and 4.
    """
    from clients.payments import ConfirmationVerdict, check_confirmation, find_order
    from ledger.pool import postgres_pool

    async with postgres_pool(config.database_url(), timeout_s=0, max_size=2) as pool:
        order = await find_order(pool, application_id)
    verdict = check_confirmation(application_id, confirmation, order)
    if verdict is ConfirmationVerdict.SEND or order is None:
        return None
    when = f" at {order.confirmed_at:%Y-%m-%d %H:%M} UTC" if order.confirmed_at else ""
    return (
        f"{application_id}: already confirmed: {order.payment_order_id} ({format_eur(order.amount_cents)}) "
        f"with reference {order.payment_reference} by {order.confirmed_by}{when}; nothing sent"
    )


def submit(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="a JSON file holding one application")],
) -> None:
    """Submit one application from a JSON file; prints the workflow id.

    Example: cx submit application.json
    """
    config = client_config(ctx)
    shown = shown_path(path)
    try:
        text = read_text(path)
        data = parse_json(text, shown)
    except InputRefused as error:
        raise fail(str(error), ExitCode.USAGE) from None
    if not isinstance(data, dict):
        raise fail(f"{shown}: one application as a JSON object ({{...}}); `cx import` takes lists", ExitCode.USAGE)
    try:
        application = parse(ApplicationInput, data)  # bad input is refused before anything is contacted
    except InvalidInput as error:
        raise fail(f"{shown}: " + "; ".join(with_lines(text, error.errors)), ExitCode.USAGE) from None

    async def main() -> str:
        client = await exchange_client(config)
        return await client.start_exchange(application)

    console.print(run(main))


def status(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the full status as JSON")] = False,
) -> None:
    """Show an exchange's stage, amounts, upcoming deadlines, alerts and history.

    Example: cx status demo-01 --json
    """
    config = client_config(ctx)

    async def main() -> ExchangeStatus:
        client = await exchange_client(config)
        return await client.status(application_id)

    result = run(main)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    for line in render_status(result, datetime.now(UTC)):
        console.print(line)


def render_status(status: ExchangeStatus, now: datetime) -> list[str]:
    """The human view of a status: amounts in EUR, deadlines still ahead, and the current stage's own
    deadline even once passed (marked overdue); deadlines of stages already left are not shown."""
    lines = [f"{status.application_id}  stage {status.stage.value}  partnership {status.partnership_id}"]
    lines.append(
        f"grant {format_optional_eur(status.grant_cents)}, held {format_eur(status.held_cents)}, "
        f"paid {format_eur(status.paid_cents)}"
    )
    current = None if status.stage.is_terminal else STAGE_DEADLINE.get(status.stage)
    for name, due in sorted(status.deadlines.items(), key=lambda item: item[1]):
        if due > now:
            lines.append(f"deadline {name}: {due.isoformat(timespec='minutes')}")
        elif name == current:
            lines.append(f"deadline {name}: {due.isoformat(timespec='minutes')} (overdue)")
    lines += [f"alert: {alert}" for alert in status.alerts]
    lines += [
        f"  {t.at.isoformat(timespec='seconds')}  {t.stage.value:<11} {t.actor_id}  {t.reason}" for t in status.history
    ]
    return lines


def mount(app: typer.Typer) -> None:
    """Add every client command to `app` (workers/cli.py's `cx`)."""
    from clients import (
        evidence_commands,
        explain_commands,
        import_commands,
        ledger_commands,
        payment_commands,
        policy_commands,
        privacy_commands,
        reconcile_commands,
        report_commands,
        review_commands,
    )

    app.command("top-up")(top_up)
    app.command("decide")(decide)
    app.command("signal")(signal_command)
    app.command("submit")(submit)
    app.command("status")(status)
    app.add_typer(ledger_commands.db_app, name="db")
    app.add_typer(ledger_commands.ledger_app, name="ledger")
    app.command("budget")(ledger_commands.budget)
    app.command("explain")(explain_commands.explain)
    app.add_typer(policy_commands.policy_app, name="policy")
    app.add_typer(review_commands.reviewers_app, name="reviewers")
    app.add_typer(review_commands.review_app, name="review")
    app.add_typer(evidence_commands.evidence_app, name="evidence")
    app.add_typer(privacy_commands.privacy_app, name="privacy")  # personal data (issue 16, item 2)
    app.add_typer(report_commands.report_app, name="report")  # KPIs for the Commission (issue 17, item 3)
    app.command("export")(report_commands.export)  # exports for the back office and auditors (issue 17, item 5)
    app.command("import")(import_commands.import_command)
    app.command("list")(import_commands.list_command)
    app.command("payments")(payment_commands.payments)
    app.command("reconcile")(reconcile_commands.reconcile)
    ops_app = typer.Typer(no_args_is_help=True, help="Ops views.")
    ops_app.command("late")(import_commands.late_command)
    app.add_typer(ops_app, name="ops")
