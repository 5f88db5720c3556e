"""`cx`'s process commands: the worker, the outbox dispatcher, the REST API, the local stack, the namespace set-up.

They are the processes of the engine, so they live with the composition root (docs/adr/0014-one-way-imports.md):
each takes its part of the one Settings (`settings_of`, workers/process.py), waits for its servers (up to
CX_CONNECT_TIMEOUT_S, logging each attempt) and runs until SIGINT or SIGTERM. Errors are one line and an
exit code of the one table (clients/command.py `run`, clients/exit_codes.py), like every other command.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from clients.client import ExchangeClient
from clients.command import console, fail, run
from clients.exit_codes import ExitCode
from ledger.pool import connect_postgres_pool, postgres_pool
from schemas.reconcile import RECONCILE_SCHEDULE_ID
from schemas.search import register_search_attributes
from workers import check_config as check
from workers.connect import connect_temporal, temporal_runtime, unless_stopped
from workers.evidence_store import open_evidence_store
from workers.logging import configure_logging, get_logger
from workers.process import settings_of
from workers.runtime import resolve_database_url, resolve_temporal_connection
from workers.settings import Settings
from workers.tracing import Role, Tracing, configure_tracing, shutdown_tracing, traced_client

if TYPE_CHECKING:
    from clients.api.identities import Identities


def mount(app: typer.Typer) -> None:
    """Add the process commands to `app` (workers/cli.py's `cx`)."""
    dev_app = typer.Typer(no_args_is_help=True, help="Run the local stack.")
    dev_app.command("up")(dev_up)
    app.add_typer(dev_app, name="dev")
    app.command("worker")(worker)
    app.command("dispatcher")(dispatcher)
    app.command("api")(api)
    temporal_app = typer.Typer(no_args_is_help=True, help="The Temporal namespace this engine needs.")
    temporal_app.command("setup")(temporal_setup)
    temporal_app.command("promote")(temporal_promote)
    app.add_typer(temporal_app, name="temporal")
    from workers.simulation.command import simulate_app  # the simulation's imports load only when mounted

    app.add_typer(simulate_app, name="simulate")


def dev_up(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="exit by itself once the sample exchanges have settled")] = False,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="drive the sample exchanges (DEMO MODE)")] = True,
) -> None:
    """Start Temporal + Postgres (embedded unless configured), migrate, seed, run the worker and the demo.

    Example: cx dev up --once
    """
    from workers.dev_up import dev_up as run_dev_up

    settings = settings_of(ctx)
    code = run(lambda: run_dev_up(settings, once=once, demo=demo))
    raise typer.Exit(code)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: a long-running process drains and exits 0."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


CheckConfig = Annotated[
    bool,
    typer.Option(
        "--check-config", help="check the environment for this process, print what it would use, and exit (0 or 2)"
    ),
]


def _report_config(role: str, lines: Callable[[], list[str]]) -> None:
    """`--check-config`: the role's configuration, or the line naming what is wrong (exit USAGE)."""
    from workers.settings import SettingsError

    try:
        checked = lines()
    except SettingsError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    console.print(f"cx {role}: configuration complete")
    for line in checked:
        console.print(f"  {line}", highlight=False, markup=False)
    raise typer.Exit(0)


def worker(ctx: typer.Context, check_config: CheckConfig = False) -> None:
    """Run a worker against TEMPORAL_ADDRESS and DATABASE_URL (or a running `make run`) until Ctrl-C.

    At start it waits for Temporal and Postgres (up to CX_CONNECT_TIMEOUT_S, default 120 s), logging each
    attempt, then exits with code 5 if one never answered.

    Example: DATABASE_URL=postgresql://cx@db/cx TEMPORAL_ADDRESS=temporal:7233 cx worker
    """
    from workers.main import build_worker

    settings = settings_of(ctx)
    configure_logging(settings.log_format)
    if not settings.finance_webhook_url:
        raise fail("CX_FINANCE_WEBHOOK_URL: required for a worker (where payment orders are delivered)", ExitCode.USAGE)
    finance_webhook_url = settings.finance_webhook_url
    if check_config:
        _report_config("worker", lambda: check.worker_lines(settings, finance_webhook_url))
    log = get_logger("cx.worker")
    tracing = _tracing(settings, "worker")

    async def main() -> None:
        stop = _stop_on_signals()
        # SDK and business metrics on CX_METRICS_ADDRESS (Prometheus), when it is set.
        runtime = temporal_runtime(settings.metrics_address)
        temporal = await unless_stopped(
            connect_temporal(
                resolve_temporal_connection(settings), timeout_s=settings.connect_timeout_s, runtime=runtime
            ),
            stop,
        )
        if temporal is None:
            return
        # The pool the activities share (CX_WORKER_POOL_SIZE): each activity holds a connection for a few ms.
        pool = await unless_stopped(
            connect_postgres_pool(
                resolve_database_url(settings),
                timeout_s=settings.connect_timeout_s,
                max_size=settings.worker_pool_size,
            ),
            stop,
        )
        if pool is None:
            return
        try:
            worker = build_worker(
                traced_client(temporal, tracing),  # its worker is traced too: one interceptor for both
                pool,
                settings.task_queue,
                finance_webhook_url=finance_webhook_url,
                notify_email=settings.notify_email,
                deployment=settings.deployment,
                activity_slots=settings.worker_activity_slots,
                cached_workflows=settings.worker_cached_workflows,
                evidence_store=open_evidence_store(settings),
            )
            async with worker:
                build = settings.deployment
                log.info(
                    "worker started",
                    task_queue=settings.task_queue,
                    deployment=build.name if build else None,
                    build_id=build.build_id if build else None,
                )
                await stop.wait()
        finally:
            await pool.close()
            shutdown_tracing(tracing)

    run(main)


def dispatcher(ctx: typer.Context, check_config: CheckConfig = False) -> None:
    """Deliver outbox messages (payment orders, notifications) as signed webhooks and e-mails until Ctrl-C.

    At start it waits for Postgres (up to CX_CONNECT_TIMEOUT_S), logging each attempt. With CX_METRICS_ADDRESS
    it serves Prometheus metrics (deliveries, durations, outbox backlog, oldest age, dead letters) at /metrics.

    Example: CX_WEBHOOK_SECRET=... CX_SMTP_HOST=mail.example.org DATABASE_URL=postgresql://cx@db/cx cx dispatcher
    """
    from workers.dispatcher import Dispatcher, DispatcherConfig

    settings = settings_of(ctx)
    configure_logging(settings.log_format)
    try:
        config = DispatcherConfig.from_settings(settings)
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    if check_config:
        auth = f"AUTH as {config.smtp_username}" if config.smtp_username else "no AUTH"
        mail = f"smtp       {config.smtp_host}:{config.smtp_port} ({config.smtp_tls}, {auth})"
        _report_config("dispatcher", lambda: [*check.common_lines(settings, temporal=False), mail])
    log = get_logger("cx.dispatcher")
    # Its Postgres queries and webhook requests become spans (asyncpg and httpx instrumentation).
    tracing = _tracing(settings, "dispatcher")

    async def main() -> None:
        stop = _stop_on_signals()
        pool = await unless_stopped(
            connect_postgres_pool(resolve_database_url(settings), timeout_s=settings.connect_timeout_s), stop
        )
        if pool is None:
            return
        delivering = Dispatcher(pool, config)
        # Its /metrics answering 200 is the dispatcher's liveness (issue 15); served only when asked for.
        metrics_server = delivering.metrics.serve(settings.metrics_address) if settings.metrics_address else None
        try:
            log.info("dispatcher started", metrics_address=settings.metrics_address)
            await delivering.run(stop)
        finally:
            if metrics_server is not None:
                metrics_server.close()
            await delivering.close()
            await pool.close()
            shutdown_tracing(tracing)

    run(main)


def api(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", help="interface to listen on (plain HTTP: another than 127.0.0.1 needs TLS in front)"),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")] = 8000,
    check_config: CheckConfig = False,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json, docs at /docs); bearer tokens from CX_API_TOKENS or
    CX_API_TOKENS_FILE, and OIDC tokens when CX_OIDC_ISSUER and CX_OIDC_AUDIENCE are set.

    At start it waits for Temporal and Postgres (up to CX_CONNECT_TIMEOUT_S), logging each attempt.

    Example: CX_API_TOKENS_FILE=/run/secrets/cx-tokens.json cx api --port 8080
    """
    # The API and its web app (FastAPI, Jinja2, every router) load only for the command that serves them:
    # about a second of every other `cx` command's start.
    from clients.api.auth import TokenConfigError
    from workers import api_identities

    settings = settings_of(ctx)
    configure_logging(settings.log_format)
    try:
        identities = api_identities.identities(settings)
    except TokenConfigError as error:
        raise fail(str(error), ExitCode.USAGE) from None
    if check_config:
        _report_config(
            "api",
            lambda: [
                *check.common_lines(settings),
                f"listen     {host}:{port}",
                *api_identities.describe(settings, identities, host),
                f"evidence   {check.evidence_location(settings)}",
            ],
        )
    tracing = _tracing(settings, "api")
    run(lambda: serve_api(settings, identities, host, port, tracing))


async def serve_api(
    settings: Settings, identities: Identities, host: str, port: int, tracing: Tracing | None = None
) -> None:
    """Run the API until interrupted: one pool and one Temporal client per process, traced when `tracing`."""
    import uvicorn  # only the serving process needs it

    from clients.api import create_app
    from clients.api.rate_limits import RateLimits
    from workers.api_identities import plain_http_warning, rate_limit_settings

    warning = plain_http_warning(host)
    if warning:
        get_logger("cx.api").warning("plain HTTP", detail=warning)
    # Both wait for their server (with backoff, up to CX_CONNECT_TIMEOUT_S) on the process's one Temporal runtime.
    temporal = await connect_temporal(resolve_temporal_connection(settings), timeout_s=settings.connect_timeout_s)
    client = ExchangeClient(traced_client(temporal, tracing), settings.task_queue)
    async with postgres_pool(resolve_database_url(settings), timeout_s=settings.connect_timeout_s) as pool:
        app = create_app(
            client,
            pool,
            identities,
            rate_limits=RateLimits(pool, rate_limit_settings(settings)),
            evidence_store=open_evidence_store(settings),
            max_body_bytes=settings.api_max_body_bytes,
            engine_timeout_s=settings.api_engine_timeout_s,
            gauge_interval_s=settings.gauge_interval_s,
            codec_cors_origin=settings.codec_cors_origin,
        )
        if tracing is not None:
            tracing.instrument_api(app)
        # Our access log (clients/api/access_log.py) replaces uvicorn's, which would say each request twice.
        config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False)
        try:
            await uvicorn.Server(config).serve()
        finally:
            shutdown_tracing(tracing)


def _tracing(settings: Settings, role: Role) -> Tracing | None:
    """The process's tracing (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set), or a usage error naming the variable."""
    try:
        return configure_tracing(settings, role)
    except ValueError as error:
        raise fail(str(error), ExitCode.USAGE) from None


def temporal_setup(ctx: typer.Context, check_config: CheckConfig = False) -> None:
    """Register the custom search attributes (CxStage, CxPartnership, ...) on the namespace and create or update
    the nightly reconciliation schedule (cx-reconcile-nightly, 02:00 UTC); idempotent.

    Example: TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=clusterxchange cx temporal setup
    """
    from workers.schedules import ensure_reconcile_schedule

    settings = settings_of(ctx)
    if check_config:
        _report_config("temporal setup", lambda: check.temporal_lines(settings))

    async def main() -> tuple[list[str], str]:
        connection = resolve_temporal_connection(settings)
        temporal = await connect_temporal(connection, timeout_s=0)
        added = await register_search_attributes(temporal, connection.namespace)
        return added, await ensure_reconcile_schedule(temporal, settings.task_queue)

    added, schedule = run(main)
    console.print(f"search attributes added: {', '.join(added)}" if added else "search attributes already in place")
    console.print(f"schedule {RECONCILE_SCHEDULE_ID} {schedule} (nightly reconciliation, 02:00 UTC)")


def temporal_promote(
    ctx: typer.Context,
    build_id: Annotated[str, typer.Option("--build-id", help="the build to make current (default: CX_BUILD_ID)")] = "",
    deployment: Annotated[
        str, typer.Option("--deployment", help="the worker deployment (default: CX_WORKER_DEPLOYMENT)")
    ] = "",
    wait_s: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a worker of the build")] = 60.0,
) -> None:
    """Make a worker build the deployment's current version: every exchange moves to it at its next task.

    Start the new build's workers first (CX_WORKER_DEPLOYMENT, CX_BUILD_ID), then promote it; stop the old
    build's workers afterwards (docs/operations.md, "Rolling out a new build").

    Example: CX_WORKER_DEPLOYMENT=clusterxchange cx temporal promote --build-id 2026.12.2-a1b2c3d
    """
    from workers.versioning import Deployment, PromotionError, promote

    settings = settings_of(ctx)
    name = deployment or settings.worker_deployment
    build = build_id or settings.build_id
    if not name or not build:
        raise fail(
            "--deployment and --build-id (or CX_WORKER_DEPLOYMENT and CX_BUILD_ID): both required", ExitCode.USAGE
        )

    async def main() -> str | None:
        connection = resolve_temporal_connection(settings)
        temporal = await connect_temporal(connection, timeout_s=0)
        try:
            return await promote(temporal, connection.namespace, Deployment(name, build), timeout_s=wait_s)
        except PromotionError as error:
            raise fail(str(error), ExitCode.UNAVAILABLE) from None

    previous = run(main)
    if previous == build:
        console.print(f"build {build} of {name} was already current")
    else:
        console.print(f"build {build} of {name} is current (was {previous or 'none'})")
