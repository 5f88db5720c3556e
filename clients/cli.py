"""`cx`: the command line of the grant engine (back office, reviewers, ops, and the dev stack).

Errors are one clear line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from temporalio.runtime import Runtime

from clients.client import ExchangeClient, ExchangeClientError, InvalidInput, parse
from ledger.errors import LedgerError
from schemas.exchange import ApplicationInput
from schemas.messages import SIGNALS, UPDATES
from workers.runtime import StackNotFound, resolve_database_url, resolve_temporal_address
from workers.settings import Settings

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, add_completion=False, help="ClusterXchange grant engine.")
dev_app = typer.Typer(no_args_is_help=True, help="Run the local stack.")
app.add_typer(dev_app, name="dev")
console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def run(coroutine_factory: Callable[[], Awaitable[T]]) -> T:
    """Run one async command, turning every expected failure into one line and exit code 1."""
    try:
        return asyncio.run(_as_coroutine(coroutine_factory))
    except (ExchangeClientError, StackNotFound, LedgerError, ValueError) as error:
        raise fail(str(error)) from None
    except (OSError, ConnectionError) as error:
        raise fail(f"cannot reach a server: {error}") from None
    except RuntimeError as error:
        raise fail(str(error)) from None
    except Exception as error:
        raise fail(f"unexpected {type(error).__name__}: {error} (details in the worker log)", code=2) from None


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


async def _client(settings: Settings, runtime: Runtime | None = None) -> ExchangeClient:
    try:
        return await ExchangeClient.connect(
            resolve_temporal_address(settings), settings.temporal_namespace, settings.task_queue, runtime
        )
    except RuntimeError as error:
        if isinstance(error, StackNotFound):
            raise
        raise RuntimeError(f"cannot connect to Temporal: {error}") from None


@dev_app.command("up")
def dev_up(
    once: Annotated[bool, typer.Option("--once", help="exit by itself once the sample exchanges have settled")] = False,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="drive the sample exchanges (DEMO MODE)")] = True,
) -> None:
    """Start Temporal + Postgres (embedded unless configured), migrate, seed, run the worker and the demo.

    Example: cx dev up --once
    """
    from workers.dev_up import dev_up as run_dev_up

    settings = Settings.from_env()
    code = run(lambda: run_dev_up(settings, once=once, demo=demo))
    raise typer.Exit(code)


@app.command("worker")
def worker() -> None:
    """Run a worker against TEMPORAL_ADDRESS and DATABASE_URL (or a running `make run`) until Ctrl-C.

    Example: DATABASE_URL=postgresql://cx@db/cx TEMPORAL_ADDRESS=temporal:7233 cx worker
    """
    import signal

    from workers.logging import configure_logging
    from workers.main import run_worker
    from workers.metrics import runtime_with_metrics

    settings = Settings.from_env()
    configure_logging(settings.log_format)

    async def main() -> None:
        # SDK and business metrics on CX_METRICS_ADDRESS (Prometheus), when it is set.
        runtime = runtime_with_metrics(settings.metrics_address) if settings.metrics_address else None
        client = await _client(settings, runtime)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if not settings.finance_webhook_url:
            raise RuntimeError("CX_FINANCE_WEBHOOK_URL: required for a worker (where payment orders are delivered)")
        await run_worker(
            client.temporal,
            resolve_database_url(settings),
            settings.task_queue,
            stop,
            finance_webhook_url=settings.finance_webhook_url,
            notify_email=settings.notify_email,
        )

    run(main)


@app.command("dispatcher")
def dispatcher() -> None:
    """Deliver outbox messages (payment orders, notifications) as signed webhooks and e-mails until Ctrl-C.

    Example: CX_WEBHOOK_SECRET=... CX_SMTP_HOST=mail.example.org DATABASE_URL=postgresql://cx@db/cx cx dispatcher
    """
    import signal

    from workers.dispatcher import Dispatcher, DispatcherConfig
    from workers.logging import configure_logging
    from workers.main import database_pool

    settings = Settings.from_env()
    configure_logging(settings.log_format)

    async def main() -> None:
        config = DispatcherConfig.from_env()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with database_pool(resolve_database_url(settings)) as pool:
            delivering = Dispatcher(pool, config)
            try:
                await delivering.run(stop)
            finally:
                delivering.close()

    run(main)


@app.command("top-up")
def top_up(
    partnership_id: Annotated[str, typer.Argument(help="the partnership whose budget grows")],
    amount_eur: Annotated[str, typer.Argument(help="euros, at most two decimals, e.g. 25000 or 1250.50")],
    reference: Annotated[str, typer.Option("--reference", help="the decision's reference; makes a re-run book once")],
) -> None:
    """Top up a partnership's budget from the programme, then offer the money to its waitlist (oldest first).

    Example: cx top-up biginn 25000 --reference EISMEA-2023-014
    """
    from decimal import Decimal, InvalidOperation

    from activities.waitlist import WaitlistActivities
    from ledger.store import LedgerStore
    from schemas.funds import FundsReleasedInput
    from workers.main import database_pool

    try:
        cents = Decimal(amount_eur) * 100
    except InvalidOperation:
        raise fail(f"amount_eur {amount_eur!r}: not a number of euros") from None
    if cents != cents.to_integral_value() or cents <= 0:
        raise fail(f"amount_eur {amount_eur!r}: must be positive with at most two decimals") from None
    settings = Settings.from_env()

    async def main() -> str:
        async with database_pool(resolve_database_url(settings)) as pool:
            transfer = await LedgerStore(pool).allocate(
                idempotency_key=f"{partnership_id}:top-up:{reference}",
                partnership_id=partnership_id,
                amount_cents=int(cents),
            )
        client = await _client(settings)
        await WaitlistActivities(client.temporal, settings.task_queue).announce_release(
            FundsReleasedInput(partnership_id=partnership_id, reason=f"top-up {reference}")
        )
        return f"{'already booked' if transfer.replayed else 'booked'}: transfer {transfer.id}, {amount_eur} EUR"

    console.print(run(main))


def _payload(data: str | None, file: Path | None) -> dict[str, Any]:
    if (data is None) == (file is None):
        raise fail("give the payload with exactly one of --data '<json>' or --file <path>")
    try:
        text = data if data is not None else (file.read_text() if file else "")
        payload = json.loads(text)
    except OSError as error:
        raise fail(f"{file}: cannot be read ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise fail(f"payload: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(payload, dict):
        raise fail("payload: must be a JSON object")
    return payload


@app.command("decide")
def decide(
    application_id: Annotated[str, typer.Argument(help="the application id")],
    update: Annotated[str, typer.Argument(help="the decision: " + ", ".join(UPDATES))],
    data: Annotated[str | None, typer.Option("--data", help="the payload as JSON")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="the payload from a JSON file")] = None,
    update_id: Annotated[
        str | None, typer.Option("--update-id", help="retry-safe: the same id is answered once")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status after the decision as JSON")] = False,
) -> None:
    """Record a person's decision (any update of the contract); refusals print the reason and exit 1.

    Example: cx decide demo-01 submit_review --data '{"actor_id": "anna", "recommendation": "approve",
    "scores": {"relevance": 4, "agenda_quality": 4, "expected_impact": 5}}'
    """
    payload = _payload(data, file)
    settings = Settings.from_env()

    async def main() -> Any:
        client = await _client(settings)
        return await client.decide(application_id, update, payload, update_id=update_id)

    result = run(main)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        console.print(f"{application_id}: {update} recorded; stage {result.stage.value}")


@app.command("signal")
def signal_command(
    application_id: Annotated[str, typer.Argument(help="the application id")],
    name: Annotated[str, typer.Argument(help="the fact: " + ", ".join(SIGNALS))],
    data: Annotated[str | None, typer.Option("--data", help="the payload as JSON")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="the payload from a JSON file")] = None,
) -> None:
    """Send a fact from another system (e.g. finance's payment confirmation) to an exchange.

    Example: cx signal demo-01 confirm_payment --data '{"payment_reference": "SEPA-1", "confirmed_by": "finance"}'
    """
    payload = _payload(data, file)
    model = SIGNALS.get(name)
    if model is None:
        raise fail(f"signal {name!r}: one of {', '.join(SIGNALS)}")
    try:
        message = parse(model, payload)
    except InvalidInput as error:
        raise fail(str(error)) from None
    settings = Settings.from_env()

    async def main() -> None:
        client = await _client(settings)
        await client.signal(application_id, name, message)

    run(main)
    console.print(f"{application_id}: {name} sent")


@app.command("api")
def api(
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, docs at /docs); bearer tokens from CX_API_TOKENS.

    Example: CX_API_TOKENS='{"s3cret-token-of-16+": {"subject": "anna", "role": "officer"}}' cx api --port 8080
    """
    from clients.api import TokenConfigError, load_tokens, serve

    settings = Settings.from_env()
    try:
        tokens = load_tokens()
    except TokenConfigError as error:
        raise fail(str(error)) from None
    run(lambda: serve(settings, tokens, host, port))


temporal_app = typer.Typer(no_args_is_help=True, help="The Temporal namespace this engine needs.")
app.add_typer(temporal_app, name="temporal")


@temporal_app.command("setup")
def temporal_setup() -> None:
    """Register the custom search attributes (CxStage, CxPartnership, ...) on the namespace; idempotent.

    Example: TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=clusterxchange cx temporal setup
    """
    from schemas.search import register_search_attributes

    settings = Settings.from_env()

    async def main() -> list[str]:
        client = await _client(settings)
        return await register_search_attributes(client.temporal, settings.temporal_namespace)

    added = run(main)
    console.print(f"search attributes added: {', '.join(added)}" if added else "search attributes already in place")


@app.command("submit")
def submit(
    path: Annotated[Path, typer.Argument(help="a JSON file holding one application")],
) -> None:
    """Submit one application from a JSON file; prints the workflow id.

    Example: cx submit application.json
    """
    settings = Settings.from_env()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise fail(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None

    try:
        application = parse(ApplicationInput, data)  # bad input is refused before anything is contacted
    except InvalidInput as error:
        raise fail(f"{path}: {error}") from None

    async def main() -> str:
        client = await _client(settings)
        return await client.start_exchange(application)

    console.print(run(main))


@app.command("status")
def status(
    application_id: Annotated[str, typer.Argument(help="the application id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the full status as JSON")] = False,
) -> None:
    """Show an exchange's stage, amounts, deadlines and history.

    Example: cx status demo-01 --json
    """
    settings = Settings.from_env()

    async def main() -> Any:
        client = await _client(settings)
        return await client.status(application_id)

    result = run(main)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    console.print(
        f"[bold]{result.application_id}[/bold]  stage {result.stage.value}  partnership {result.partnership_id}"
    )
    console.print(f"grant {result.grant_cents} cents, held {result.held_cents}, paid {result.paid_cents}")
    for name, due in result.deadlines.items():
        console.print(f"deadline {name}: {due.isoformat()}")
    for transition in result.history:
        console.print(
            f"  {transition.at.isoformat()}  {transition.stage.value:<11} {transition.actor_id}  {transition.reason}"
        )


def _mount_subcommands() -> None:
    from clients import (
        evidence_commands,
        explain_commands,
        import_commands,
        ledger_commands,
        policy_commands,
        review_commands,
    )

    app.add_typer(ledger_commands.db_app, name="db")
    app.add_typer(ledger_commands.ledger_app, name="ledger")
    app.command("budget")(ledger_commands.budget)
    app.command("explain")(explain_commands.explain)
    app.add_typer(policy_commands.policy_app, name="policy")
    app.add_typer(review_commands.reviewers_app, name="reviewers")
    app.add_typer(review_commands.review_app, name="review")
    app.add_typer(evidence_commands.evidence_app, name="evidence")
    app.command("import")(import_commands.import_command)
    app.command("list")(import_commands.list_command)
    ops_app = typer.Typer(no_args_is_help=True, help="Ops views.")
    ops_app.command("late")(import_commands.late_command)
    app.add_typer(ops_app, name="ops")


_mount_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
