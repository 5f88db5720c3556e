"""`make run` / `cx dev up`: the whole stack on one machine, and the demo driven through it.

Starts (or connects to) Temporal and Postgres, migrates, seeds the partnerships, runs the worker,
submits the sample exchanges in DEMO MODE and acts for the people in them, then prints exchanges by
stage and budgets per partnership. State lives under .cx/ (Temporal's SQLite file, Postgres' data
directory), so a second run resumes. Ctrl-C stops everything this process started; `--once` exits
by itself when every sample has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import uvicorn
from pypdf import PdfWriter
from rich.console import Console
from rich.table import Table
from temporalio.client import Client

from clients.api import Principal, create_app
from clients.api.rate_limits import RateLimits
from clients.api.static_tokens import strength_refusal
from clients.client import ExchangeClient
from clients.demo import demo_samples, drive
from ledger.evidence import store_evidence
from ledger.migrate import apply_migrations
from ledger.pool import redact_dsn
from ledger.progress import exchange_progress
from ledger.store import LedgerStore
from schemas.exchange import EvidenceItem
from schemas.reconcile import RECONCILE_SCHEDULE_ID
from schemas.search import register_search_attributes
from workers import api_identities
from workers.devstack import EmbeddedPostgres, TemporalEndpoint, free_port, temporal_dev_server
from workers.dispatcher import Dispatcher, DispatcherConfig
from workers.evidence_store import open_evidence_store
from workers.finance_stub import FinanceStub
from workers.logging import configure_logging
from workers.main import database_pool, run_worker
from workers.metrics import runtime_with_metrics
from workers.runtime import RuntimeInfo, clear_runtime, write_runtime
from workers.schedules import ensure_reconcile_schedule
from workers.seed import seed_partnerships
from workers.settings import Settings

console = Console(stderr=False)


@contextlib.asynccontextmanager
async def postgres(settings: Settings) -> AsyncIterator[str]:
    """DATABASE_URL, or an embedded Postgres whose data lives in <state_dir>/postgres."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.state_dir / "postgres", settings.postgres_port)
    # Started on the main thread, on purpose: the server is told to stop when the thread that
    # started it dies (see devstack._stop_when_parent_dies), and a pool thread may die any time.
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


async def dev_up(settings: Settings, *, once: bool, demo: bool = True) -> int:
    log_path, stop = _logging_and_signals(settings)
    console.rule("[bold]ClusterXchange grant engine: make run")
    metrics_address = settings.metrics_address or f"127.0.0.1:{free_port()}"
    runtime = runtime_with_metrics(metrics_address)
    async with postgres(settings) as database_url, temporal_dev_server(settings, runtime) as temporal:
        await _prepare_stores(settings, database_url, temporal)
        console.print(f"Logs       {log_path}")
        console.print(f"Metrics    http://{metrics_address}/metrics")
        write_runtime(settings, RuntimeInfo(database_url, temporal.address, temporal.ui_url, os.getpid()))
        try:
            async with database_pool(database_url) as pool:
                store = LedgerStore(pool)
                await seed_partnerships(pool, store)
                console.print("Seeded     15 partnerships, 7,000,000.00 EUR allocated")
                services = await _start_services(settings, temporal.client, database_url, pool)
                try:
                    if demo:
                        await _run_demo(settings, temporal, pool, store, services.finance, stop)
                    if not once:
                        console.print("Worker running; Ctrl-C stops every process this command started.")
                        await stop.wait()
                finally:
                    await services.stop_within(SHUTDOWN_LIMIT_S)
        finally:
            clear_runtime(settings)
    console.print("Stopped.")
    return 0


def _logging_and_signals(settings: Settings) -> tuple[Path, asyncio.Event]:
    """The worker's log file, and the event Ctrl-C and SIGTERM set."""
    # The terminal shows the demo's progress; the worker's log lines (JSON) go to a file.
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / "worker.log"
    configure_logging(settings.log_format, path=log_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return log_path, stop


async def _prepare_stores(settings: Settings, database_url: str, temporal: TemporalEndpoint) -> None:
    """Say where the stores are, make sure ops' search attributes exist on a server of ours, migrate, and put the
    nightly reconciliation's schedule in place (as `cx temporal setup` does on a cluster)."""
    console.print(f"Postgres   {redact_dsn(database_url)}")
    namespace = temporal.client.namespace
    console.print(f"Temporal   {temporal.address}  (namespace {namespace})")
    if temporal.ui_url:
        console.print(f"Temporal UI [link]{temporal.ui_url}[/link]")
    else:  # an existing server: make sure ops' search attributes exist
        await register_search_attributes(temporal.client, namespace)
    applied = await apply_migrations(database_url)
    console.print(f"Migrations {', '.join(applied) if applied else 'up to date'}")
    schedule = await ensure_reconcile_schedule(temporal.client, settings.task_queue)
    console.print(f"Schedule   {RECONCILE_SCHEDULE_ID} {schedule} (nightly reconciliation, 02:00 UTC)")


@dataclass(frozen=True)
class _Services:
    """What `make run` runs beside the demo: the worker, the dispatcher, the API and the finance stand-in."""

    api_server: uvicorn.Server
    serving: asyncio.Task[None]
    # The worker outlives the demo driver: a decision in flight when Ctrl-C arrives still needs a worker to
    # answer it, so the worker stops only after the driver has returned.
    worker_stop: asyncio.Event
    tasks: list[asyncio.Task[None]]  # the worker's and the dispatcher's
    dispatcher: Dispatcher
    finance: FinanceStub

    async def stop_within(self, limit_s: float) -> None:
        await _stop_within(
            limit_s, self.api_server, self.serving, self.worker_stop, self.tasks, self.dispatcher, self.finance
        )


async def _start_services(settings: Settings, client: Client, database_url: str, pool: asyncpg.Pool) -> _Services:
    """Start the finance stand-in, the worker, the dispatcher and the API, and print where they are."""
    worker_stop = asyncio.Event()
    # Payment orders leave through the outbox; here the dispatcher delivers them to a local finance
    # stand-in (unless CX_FINANCE_WEBHOOK_URL names a real endpoint).
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else secrets.token_hex(32)
    finance = FinanceStub(secret)
    await finance.start()
    finance_url = settings.finance_webhook_url or finance.url
    console.print(f"Finance    payment orders are delivered to {finance_url}")
    worker = asyncio.create_task(
        run_worker(
            client,
            database_url,
            settings.task_queue,
            worker_stop,
            finance_webhook_url=finance_url,
            evidence_store=open_evidence_store(settings),
        )
    )
    # CX_SMTP_* apply here too (a local relay without STARTTLS needs CX_SMTP_TLS=none); retries come sooner.
    dispatcher_config = DispatcherConfig.from_settings(settings, webhook_secret=secret)
    dispatcher = Dispatcher(pool, replace(dispatcher_config, base_backoff_s=1.0))
    dispatching = asyncio.create_task(dispatcher.run(worker_stop))
    api_server, api_url, dev_users = _api_server(ExchangeClient(client, settings.task_queue), pool, settings)
    serving = asyncio.create_task(api_server.serve())
    console.print(f"API        {api_url}/docs", soft_wrap=True)
    console.print(f"Web app    {api_url}/app", soft_wrap=True)
    # Payloads are encrypted (workers/payload_keys.py): histories read decoded through the API's codec server.
    console.print(f"Codec      {api_url}/codec  (temporal workflow show --codec-endpoint ...)", soft_wrap=True)
    if dev_users:
        console.print(f"API token  {dev_users['officer']}  (an officer, for this run only)", soft_wrap=True)
        for role, token in dev_users.items():
            console.print(f"Sign in    {role:<9} {token}", soft_wrap=True)
    return _Services(api_server, serving, worker_stop, [worker, dispatching], dispatcher, finance)


async def _run_demo(
    settings: Settings,
    temporal: TemporalEndpoint,
    pool: asyncpg.Pool,
    store: LedgerStore,
    finance: FinanceStub,
    stop: asyncio.Event,
) -> None:
    """DEMO MODE: submit the samples, act for their people until they settle (or `stop`), print the summary."""
    console.rule("[bold yellow]DEMO MODE: acting for reviewers, signatories, travellers and finance")
    client = ExchangeClient(temporal.client, settings.task_queue)
    evidence_store = open_evidence_store(settings)

    async def upload(application_id: str) -> EvidenceItem:
        """The traveller's boarding pass: a small real PDF, one per exchange."""
        content = demo_boarding_pass(application_id)
        async with pool.acquire() as conn:
            return await store_evidence(
                conn,
                evidence_store,
                application_id=application_id,
                path_or_bytes=content,
                name="boarding-pass.pdf",
                kind="boarding_pass",
                uploaded_by="visitor-traveller",
            )

    def show(line: str) -> None:
        console.print(f"  {line}")

    await drive(
        client,
        demo_samples(datetime.now(UTC).date()),
        show,
        stop,
        upload,
        lambda application_ids: exchange_progress(pool, application_ids),
        payment_order_received=lambda application_id: application_id in finance.received,
    )
    await print_summary(pool, store, temporal.ui_url)


# Ctrl-C or SIGTERM stops everything within this limit, whatever is in flight: requests get
# API_GRACE_S to finish, then the rest is cancelled (issue 11: a hung request kept `make run` alive).
SHUTDOWN_LIMIT_S = 15.0
API_GRACE_S = 5


async def _stop_within(
    limit_s: float,
    api_server: uvicorn.Server,
    serving: asyncio.Task[None],
    worker_stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    dispatcher: Dispatcher,
    finance: FinanceStub,
) -> None:
    """Stop the API, then the worker and the dispatcher (they drain what is in flight), all within `limit_s`."""

    async def orderly() -> None:
        api_server.should_exit = True
        await serving
        worker_stop.set()
        await asyncio.gather(*tasks)

    try:
        await asyncio.wait_for(orderly(), limit_s)
    except TimeoutError:
        console.print(f"[yellow]Still busy after {limit_s:.0f} s: cancelling what is in flight.[/yellow]")
        for task in (serving, *tasks):
            task.cancel()
        await asyncio.gather(serving, *tasks, return_exceptions=True)
    finally:
        await dispatcher.close()
        await finance.close()


class _EmbeddedApiServer(uvicorn.Server):
    """uvicorn without its own signal handlers: in `make run` this process owns Ctrl-C and stops the API."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _api_server(
    exchanges: ExchangeClient, pool: asyncpg.Pool, settings: Settings
) -> tuple[uvicorn.Server, str, dict[str, str]]:
    """The REST API and web app on a free (or CX_API_PORT) port; tokens from CX_API_TOKENS(_FILE), else dev users.

    The dev users (returned as role -> token, printed by `make run`) are made for this run only: an officer,
    a reviewer of the first demo exchange's partnership, that exchange's visitor organisation as an
    applicant, and ops, so that each role's pages can be opened at once (docs/adr/0016-web-app.md).
    """
    dev_users: dict[str, str] = {}
    dev_principals: dict[str, Principal] | None = None
    if settings.api_tokens is None and settings.api_tokens_file is None:
        dev_principals = {}
        for role, who in _dev_principals().items():
            # 32 URL-safe characters (192 bits): strong by the rule every static token must meet.
            token = secrets.token_urlsafe(24)
            assert strength_refusal(token) is None, "a dev token meets the strength rule"
            dev_principals[token] = who
            dev_users[role] = token
    tokens = api_identities.identities(settings, dev_principals)
    port = settings.api_port or free_port()
    config = uvicorn.Config(
        create_app(
            exchanges,
            pool,
            tokens,
            rate_limits=RateLimits(pool, api_identities.rate_limit_settings(settings)),
            evidence_store=open_evidence_store(settings),
            max_body_bytes=settings.api_max_body_bytes,
            engine_timeout_s=settings.api_engine_timeout_s,
            gauge_interval_s=settings.gauge_interval_s,  # the programme gauges at /metrics (issue 15)
            codec_cors_origin=settings.codec_cors_origin,
        ),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=API_GRACE_S,  # a request still running then is cancelled, never waited for
    )
    return _EmbeddedApiServer(config), f"http://127.0.0.1:{port}", dev_users


def _dev_principals() -> dict[str, Principal]:
    first = demo_samples(datetime.now(UTC).date())[0].application
    partnership = first.visitor_partnership_id
    return {
        "officer": Principal(subject="demo-officer", role="officer"),
        "reviewer": Principal(subject=f"{partnership}-reviewer-1", role="reviewer"),
        "applicant": Principal(
            subject="demo-applicant", role="applicant", organisations=frozenset({first.visitor.organisation_id})
        ),
        "ops": Principal(subject="demo-ops", role="ops"),
    }


async def print_summary(pool: asyncpg.Pool, store: LedgerStore, ui_url: str | None) -> None:
    by_stage = await pool.fetch("SELECT stage, count(*) AS n FROM exchanges GROUP BY stage ORDER BY stage")
    stages = Table(title="Exchanges by stage")
    stages.add_column("stage")
    stages.add_column("exchanges", justify="right")
    for row in by_stage:
        stages.add_row(row["stage"], str(row["n"]))
    console.print(stages)

    names = {r["partnership_id"]: r["name"] for r in await pool.fetch("SELECT partnership_id, name FROM partnerships")}
    budgets = Table(title="Budgets per partnership (EUR)")
    for column in ("partnership", "allocated", "held", "paid", "available"):
        budgets.add_column(column, justify="left" if column == "partnership" else "right")
    totals = [0, 0, 0, 0]
    for b in sorted(await store.partnership_balances(), key=lambda b: b.partnership_id):
        amounts = [b.allocated_cents, b.held_cents, b.paid_cents, b.available_cents]
        totals = [t + a for t, a in zip(totals, amounts, strict=True)]
        budgets.add_row(names.get(b.partnership_id, b.partnership_id), *(euros(a) for a in amounts))
    budgets.add_row("[bold]total", *(f"[bold]{euros(t)}" for t in totals))
    console.print(budgets)
    if ui_url:
        console.print(f"Temporal UI: [link]{ui_url}[/link]")


def euros(cents: int) -> str:
    """Exact formatting of integer cents (no float on the way)."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{rest:02d}"


def demo_boarding_pass(application_id: str) -> bytes:
    """The demo traveller's boarding pass: a real one-page PDF titled with the exchange, so that each is
    unique (evidence is stored by SHA-256) and passes the evidence checks (rules/evidence_content.py)."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": f"DEMO boarding pass, {application_id}"})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
