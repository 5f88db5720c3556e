"""Scale-out on one machine (issue 15, "The executable proof on one machine"): not a test.

    .venv/bin/python -m bench.scaleout [--exchanges 60] [--repeats 1] [--no-kill]    (make scaleout ARGS="...")

One Temporal dev server (in memory) and one Postgres (DATABASE_URL's server in a fresh database dropped at
the end, or an embedded one in a temporary directory), migrated, with the search attributes and the 15
partnerships seeded with enough budget. Then, on the same task queue:

- phase A: 1 `cx worker`; phase B: 3 `cx worker` processes (`--repeats` pairs of them, timed);
- in every phase: 2 `cx dispatcher` processes, 2 `cx api` processes on free ports, and the finance
  receiver (workers/finance_stub.py, in this process) to which the dispatchers deliver the payment orders;
- the same number of exchanges driven to PAID in each phase by bench/drivers.py's actors, every command sent
  over HTTP to the two APIs in turn (bench/api_actors.py); finance confirms a payment once its order has
  arrived at the receiver; the actors read the Postgres read model to know when it is their turn;
- then phase B once more (`b-kill`, unless --no-kill): once the batch is a third of its way to PAID, one
  worker and one dispatcher are killed with SIGKILL; the run must still finish. It is timed apart from the ratio
  because its recovery is a fixed wait (see `measure`).

It prints exchanges/s per phase, the `ratio` of 3 workers to 1 worker (median and spread over repeats),
`0 lost` (every started exchange PAID in Postgres), `0 double` (no exchange with two payment postings or
payouts in the ledger, nor two orders or one order kept twice by the finance receiver), the result of
`cx ledger check`, and `postgres connections:` per process (peaks from pg_stat_activity, each process
naming itself with `application_name`). Exit 0 when all hold, 1 when the run failed, 2 when an invariant
broke. Every process it starts is stopped at the end, on Ctrl-C too; the children also die with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from temporalio.client import Client

from bench import procfs
from bench.api_actors import ApiActors, api_tokens
from bench.children import (
    BIN_DIR,
    CHILD_START_LIMIT_S,
    ChildWorker,
    progress,
    start_child,
    start_dev_server,
    wait_for_poller,
)
from bench.drivers import Finance, ReadModel, Recorder, bench_application, drive_exchange
from bench.finance_desk import FinanceDesk
from bench.lifecycle import seed, worker_counters
from bench.scaleout_checks import (
    EXIT_RUN_FAILED,
    Doubles,
    connection_peaks,
    describe_connections,
    double_payments,
    exit_code,
    lifecycle_progress,
    lost_exchanges,
    throughput_ratio,
)
from ledger.migrate import apply_migrations
from schemas.exchange import ApplicationInput
from schemas.stages import Stage
from workers.devstack import EmbeddedPostgres, create_database, drop_database, free_port
from workers.seed import PARTNERSHIPS

WARM_UP_EXCHANGES = 2  # driven to PAID before the first phase is timed: server caches, Funds workflows
DISPATCHERS = 2
APIS = 2
KILL_AT_PROGRESS = 1 / 3  # of the batch's way to PAID (stages reached), when b-kill loses a worker and a dispatcher
SAMPLE_S = 0.5  # how often pg_stat_activity and the workers' memory are read
PROGRESS_POLL_S = 0.1
LEDGER_CHECK_LIMIT_S = 300.0
MIB = 1024 * 1024
POOL_MAX_PER_PROCESS = 10  # each worker's, dispatcher's and API's pool at most (ledger/pool.py, CX_WORKER_POOL_SIZE)
BENCH_POOL_MAX = 8

CONNECTIONS_SQL = """
    SELECT coalesce(nullif(application_name, ''), '(unnamed)') AS name, count(*)::int AS n
      FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1"""
STAGES_SQL = "SELECT application_id, stage FROM exchanges WHERE application_id = ANY($1::text[])"
# The payment's two transfers (post of the hold, payout) of each exchange's ledger account.
PAYMENT_TRANSFERS_SQL = """
    SELECT a.exchange_id AS application_id, t.kind::text AS kind
      FROM ledger_transfers t JOIN ledger_accounts a ON a.id IN (t.debit_account_id, t.credit_account_id)
     WHERE a.kind = 'exchange' AND t.kind IN ('post', 'pay_out') AND a.exchange_id = ANY($1::text[])"""


def with_application_name(dsn: str, name: str) -> str:
    """The DSN with `application_name` set, so that pg_stat_activity says which process holds a connection
    (asyncpg passes unknown query parameters to the server as settings)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"] + [("application_name", name)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class Site:
    """What lives for the whole run: the servers, the bench's own pool and client, finance, the run's ids."""

    dsn: str
    pool: asyncpg.Pool
    client: Client
    temporal_address: str
    task_queue: str
    finance: FinanceDesk
    webhook_secret: str
    work_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    started: list[str] = field(default_factory=list)  # every application id the bench started

    def applications(self, label: str, count: int) -> list[ApplicationInput]:
        """`count` eligible applications, spread over the partnerships (each its own organisations)."""
        return [
            bench_application(
                f"{self.run_id}-{label}-{i:04d}", PARTNERSHIPS[i % len(PARTNERSHIPS)].partnership_id, self.today
            )
            for i in range(count)
        ]

    def child_env(self, name: str, extra: dict[str, str]) -> dict[str, str]:
        """A child's environment: the caller's, minus every setting of ours, plus this run's."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "TEMPORAL_", "DATABASE_URL"))}
        return (
            base
            | {
                "TEMPORAL_ADDRESS": self.temporal_address,
                "DATABASE_URL": with_application_name(self.dsn, name),
                "CX_TASK_QUEUE": self.task_queue,
                "CX_LOG_FORMAT": "json",
                "CX_STATE_DIR": str(self.work_dir / "state"),
                "CX_EVIDENCE_DIR": str(self.work_dir / "evidence"),  # one store for both APIs and every worker
                "CX_CONNECT_TIMEOUT_S": str(int(CHILD_START_LIMIT_S)),
            }
            | extra
        )


@dataclass
class PhaseResult:
    label: str
    workers: int
    exchanges: int
    seconds: float
    killed: list[str]
    kill_after_s: float | None
    connections: dict[str, int]
    connections_peak_total: int
    worker_rss_peak: dict[str, int]
    requests_by_api: dict[str, int]
    transient_retries: int
    updates_refused: int
    tasks_by_worker: dict[str, str]  # worker -> its workflow and activity tasks of the phase (or "killed")

    @property
    def per_s(self) -> float:
        return self.exchanges / self.seconds


@dataclass
class Processes:
    workers: list[ChildWorker]
    dispatchers: list[ChildWorker]
    apis: list[ChildWorker]
    api_urls: list[str]

    @property
    def all(self) -> list[ChildWorker]:
        return [*self.workers, *self.dispatchers, *self.apis]


@contextlib.asynccontextmanager
async def phase_processes(site: Site, workers: int, api_tokens_config: str) -> AsyncIterator[Processes]:
    """N workers, the dispatchers and the APIs as `cx` child processes, ready; all stopped at the end."""
    cx = str(BIN_DIR / "cx")
    started: list[ChildWorker] = []
    try:
        procs = Processes([], [], [], [])
        for k in range(1, workers + 1):
            metrics = f"127.0.0.1:{free_port()}"
            env = site.child_env(
                f"worker-{k}", {"CX_FINANCE_WEBHOOK_URL": site.finance.url, "CX_METRICS_ADDRESS": metrics}
            )
            procs.workers.append(start_child(f"worker-{k}", [cx, "worker"], env, site.work_dir, metrics))
        for k in range(1, DISPATCHERS + 1):
            metrics = f"127.0.0.1:{free_port()}"
            env = site.child_env(
                f"dispatcher-{k}", {"CX_WEBHOOK_SECRET": site.webhook_secret, "CX_METRICS_ADDRESS": metrics}
            )
            procs.dispatchers.append(start_child(f"dispatcher-{k}", [cx, "dispatcher"], env, site.work_dir, metrics))
        for k in range(1, APIS + 1):
            port = free_port()
            # The bench's few principals send the whole batch's writes: the per-principal write limit (120 a minute
            # by default, meant for people) is raised, not switched off, so its Postgres count is still measured.
            env = site.child_env(f"api-{k}", {"CX_API_TOKENS": api_tokens_config, "CX_API_WRITE_RATE": "1000000"})
            argv = [cx, "api", "--host", "127.0.0.1", "--port", str(port)]
            procs.apis.append(start_child(f"api-{k}", argv, env, site.work_dir, ""))
            procs.api_urls.append(f"http://127.0.0.1:{port}")
        started = procs.all
        await asyncio.gather(
            *(wait_for_poller(site.client, w, site.task_queue) for w in procs.workers),
            *(wait_connected(site.pool, d) for d in procs.dispatchers),
            *(wait_api_ready(a, url) for a, url in zip(procs.apis, procs.api_urls, strict=True)),
        )
        yield procs
    finally:
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in started))


async def wait_connected(pool: asyncpg.Pool, child: ChildWorker) -> None:
    """A dispatcher is up once it holds a Postgres connection under its name (its pool opens one at start)."""
    deadline = time.monotonic() + CHILD_START_LIMIT_S
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"{child.name} exited at start-up; see {child.log_path}:\n{child.log_tail()}")
        names = {r["name"] for r in await pool.fetch(CONNECTIONS_SQL)}
        if child.name in names:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{child.name} held no Postgres connection within {CHILD_START_LIMIT_S:.0f} s")


async def wait_api_ready(child: ChildWorker, base_url: str) -> None:
    """An API is up once GET /readyz answers 200 (Temporal and Postgres reachable)."""

    def ready() -> bool:
        try:
            # S310: the URL is ours, http on 127.0.0.1 with a port we chose.
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=5) as response:  # noqa: S310
                return int(response.status) == 200
        except OSError:
            return False

    deadline = time.monotonic() + CHILD_START_LIMIT_S
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"{child.name} exited at start-up; see {child.log_path}:\n{child.log_tail()}")
        if await asyncio.to_thread(ready):
            return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"{child.name} was not ready at {base_url}/readyz within {CHILD_START_LIMIT_S:.0f} s")


class Sampler:
    """pg_stat_activity by application_name, and each worker's memory, every SAMPLE_S while a phase runs."""

    def __init__(self, pool: asyncpg.Pool, workers: list[ChildWorker]) -> None:
        self._pool = pool
        self._workers = workers
        self.samples: list[dict[str, int]] = []
        self.rss_peak: dict[str, int] = {w.name: 0 for w in workers}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Sampler]:
        task = asyncio.create_task(self._sample_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_forever(self) -> None:
        while True:
            rows = await self._pool.fetch(CONNECTIONS_SQL)
            self.samples.append({r["name"]: r["n"] for r in rows})
            for w in self._workers:
                if w.running:
                    self.rss_peak[w.name] = max(self.rss_peak[w.name], procfs.rss_bytes(w.pid))
            await asyncio.sleep(SAMPLE_S)


async def kill_mid_run(site: Site, ids: list[str], procs: Processes, started: float) -> tuple[list[str], float]:
    """Once the batch is KILL_AT_PROGRESS of its way to PAID: kill -9 the first worker and the first dispatcher."""
    while True:
        stages = [r["stage"] for r in await site.pool.fetch(STAGES_SQL, ids)]
        if lifecycle_progress(stages, len(ids)) >= KILL_AT_PROGRESS:
            break
        await asyncio.sleep(PROGRESS_POLL_S)
    victims = [procs.workers[0], procs.dispatchers[0]]
    for victim in victims:
        victim.kill()  # here, not in a thread: a phase ending now cannot cancel a kill half done
    after_s = time.perf_counter() - started
    paid = sum(1 for stage in stages if stage == "PAID")
    names = ", ".join(v.name for v in victims)
    progress(f"  a third of the way to PAID ({paid} of {len(ids)} PAID) after {after_s:.1f} s: killed {names} (-9)")
    return [v.name for v in victims], after_s


async def drive_all(
    site: Site, actors: ApiActors, apps: list[ApplicationInput], read_model: ReadModel, recorder: Recorder
) -> None:
    """Every exchange of `apps` to PAID at once, through the APIs; finance waits for the order at the receiver."""

    async def paid(application_id: str) -> None:
        await read_model.stage(application_id, Stage.PAID)

    finance = Finance(payment_order=site.finance.payment_order, paid=paid)
    site.started.extend(a.application_id for a in apps)
    await asyncio.gather(*(drive_exchange(actors, a, actors.upload, read_model, recorder, finance) for a in apps))


async def run_phase(site: Site, label: str, workers: int, count: int, *, warm_up: int, kill: bool) -> PhaseResult:
    """One phase: its processes started, `warm_up` exchanges untimed, then `count` timed (and the kill)."""
    warm, apps = site.applications(f"{label}w", warm_up), site.applications(label, count)
    reviewer_ids = [r["reviewer_id"] for r in await site.pool.fetch("SELECT reviewer_id FROM reviewers")]
    tokens = api_tokens(reviewer_ids, [*warm, *apps], [p.partnership_id for p in PARTNERSHIPS])
    by_id = {a.application_id: a for a in [*warm, *apps]}
    async with phase_processes(site, workers, tokens.config) as procs:
        actors = ApiActors(procs.api_urls, tokens, by_id)
        try:
            async with ReadModel(site.pool).running() as read_model:
                if warm:
                    await drive_all(site, actors, warm, read_model, Recorder())
                recorder = Recorder()
                async with Sampler(site.pool, procs.workers).running() as sampler:
                    started = time.perf_counter()
                    ids = [a.application_id for a in apps]
                    killer = asyncio.create_task(kill_mid_run(site, ids, procs, started)) if kill else None
                    try:
                        await drive_all(site, actors, apps, read_model, recorder)
                    finally:
                        if killer is not None and not killer.done():
                            killer.cancel()  # the phase ended (or failed) before the kill: said in the report
                    seconds = time.perf_counter() - started
                killed, kill_after_s = killer.result() if killer is not None and not killer.cancelled() else ([], None)
                tasks = await tasks_by_worker(procs.workers)
        finally:
            await actors.close()
    peaks = connection_peaks(sampler.samples)
    return PhaseResult(
        label=label,
        workers=workers,
        exchanges=count,
        seconds=seconds,
        killed=killed,
        kill_after_s=kill_after_s,
        connections=peaks,
        connections_peak_total=max((sum(s.values()) for s in sampler.samples), default=0),
        worker_rss_peak=sampler.rss_peak,
        requests_by_api=dict(actors.requests_by_api),
        transient_retries=actors.transient_retries,
        updates_refused=recorder.updates_refused,
        tasks_by_worker=tasks,
    )


async def tasks_by_worker(workers: list[ChildWorker]) -> dict[str, str]:
    """How the work spread: each live worker's workflow and activity tasks (its SDK counters) since it started."""
    spread: dict[str, str] = {}
    for w in workers:
        if not w.running:
            spread[w.name] = "killed"
            continue
        counters = await worker_counters(w)
        spread[w.name] = f"{counters['workflow tasks']:.0f} wf/{counters['activity tasks']:.0f} act"
    return spread


@dataclass
class Outcome:
    """What the run found; `failure` when it could not finish (then nothing else is a verdict)."""

    phases: list[PhaseResult] = field(default_factory=list)
    started: int = 0
    lost: list[str] = field(default_factory=list)
    doubles: Doubles | None = None
    deliveries_kept: int = 0
    ledger_payments: dict[str, int] = field(default_factory=dict)  # transfer kind -> count, over every exchange
    orders_received: int = 0
    ledger_clean: bool = False
    ledger_output: str = ""
    max_connections: int = 0
    failure: str | None = None


async def verdicts(site: Site, out: Outcome) -> None:
    """Lost and double payments from Postgres and the finance receiver; `cx ledger check` on the database."""
    out.started = len(site.started)
    stages = {r["application_id"]: r["stage"] for r in await site.pool.fetch(STAGES_SQL, site.started)}
    out.lost = lost_exchanges(site.started, stages)
    ledger_rows = [(r["application_id"], r["kind"]) for r in await site.pool.fetch(PAYMENT_TRANSFERS_SQL, site.started)]
    out.doubles = double_payments(ledger_rows, site.finance.orders.stored)
    out.ledger_payments = dict(Counter(kind for _, kind in ledger_rows))
    out.deliveries_kept = len(site.finance.orders.stored)
    out.orders_received = len(site.finance.orders)
    out.ledger_clean, out.ledger_output = await ledger_check(site.dsn)


async def ledger_check(dsn: str) -> tuple[bool, str]:
    """`cx ledger check` on the run's database, as ops would run it: clean when it exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "TEMPORAL_", "DATABASE_URL"))}
    process = await asyncio.create_subprocess_exec(
        str(BIN_DIR / "cx"),
        "ledger",
        "check",
        env=env | {"DATABASE_URL": with_application_name(dsn, "cx-ledger-check")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), LEDGER_CHECK_LIMIT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"cx ledger check did not finish within {LEDGER_CHECK_LIMIT_S:.0f} s"
    return process.returncode == 0, output.decode(errors="replace").strip()


@contextlib.asynccontextmanager
async def site_of(admin_dsn: str, work_dir: Path, total_exchanges: int) -> AsyncIterator[Site]:
    """A fresh database (migrated, seeded), the dev server with the search attributes, the finance receiver."""
    dsn = await create_database(admin_dsn, prefix="cx_scaleout")
    try:
        await apply_migrations(dsn)
        env, port = await start_dev_server()
        try:
            pool = await asyncpg.create_pool(with_application_name(dsn, "bench"), min_size=1, max_size=BENCH_POOL_MAX)
            secret = secrets.token_hex(32)
            finance = FinanceDesk(secret)
            await finance.start()
            try:
                await seed(pool, total_exchanges)
                task_queue = f"scaleout-{uuid.uuid4().hex[:6]}"
                yield Site(dsn, pool, env.client, f"127.0.0.1:{port}", task_queue, finance, secret, work_dir)
            finally:
                await finance.close()
                await pool.close()
        finally:
            await env.shutdown()
    finally:
        await drop_database(admin_dsn, dsn)


async def measure(site: Site, args: argparse.Namespace, out: Outcome) -> None:
    """Phase A (1 worker) then phase B (3 workers), `--repeats` times, timed for the ratio; then phase B once
    more with the kill -9 mid-run (unless --no-kill); then the verdicts over every exchange of the run.

    The kill has its own run of phase B because its recovery is a fixed wait, not work: the killed worker's
    activities are retried only once their start-to-close timeout (30 s, workflows/options.py) expires and
    its claimed outbox rows once their lease (25 s) does. Inside a timed phase it swamped the ratio
    (20 exchanges: 3.2 s with 1 worker, 34.1 s with 3 workers and the kill: 0.09x).
    """
    out.max_connections = int(await site.pool.fetchval("SHOW max_connections"))
    in_use = int(await site.pool.fetchval("SELECT count(*) FROM pg_stat_activity"))
    needed = POOL_MAX_PER_PROCESS * (3 + DISPATCHERS + APIS) + BENCH_POOL_MAX
    if out.max_connections - in_use < needed:
        progress(
            f"warning: Postgres has {out.max_connections - in_use} connections free and phase B may take {needed}: "
            "a process that cannot connect fails the run (the embedded Postgres allows 300; unset DATABASE_URL)"
        )
    plan = [(f"r{r}{'ab'[k]}", workers, False) for r in range(1, args.repeats + 1) for k, workers in enumerate((1, 3))]
    if not args.no_kill:
        plan.append(("b-kill", 3, True))
    for n, (label, workers, kill) in enumerate(plan):
        crash = ", kill -9 of a worker and a dispatcher mid-run" if kill else ""
        progress(f"phase {label}: {workers} worker(s), {args.exchanges} exchanges to PAID{crash}")
        warm_up = WARM_UP_EXCHANGES if n == 0 else 0
        phase = await run_phase(site, label, workers, args.exchanges, warm_up=warm_up, kill=kill)
        out.phases.append(phase)
        progress(f"  {phase.exchanges} PAID in {phase.seconds:.1f} s: {phase.per_s:.3f} exchanges/s")
    progress("verdicts: lost and double payments, cx ledger check")
    await verdicts(site, out)


async def run(admin_dsn: str, args: argparse.Namespace) -> Outcome:
    """The whole run; SIGINT or SIGTERM stops it, and every process it started is still stopped."""
    out = Outcome()
    work_dir = Path(tempfile.mkdtemp(prefix="cx-bench-scaleout-"))
    total = args.repeats * 2 * args.exchanges + WARM_UP_EXCHANGES
    loop = asyncio.get_running_loop()
    signalled: list[str] = []

    async def whole() -> None:
        async with site_of(admin_dsn, work_dir, total) as site:
            await measure(site, args, out)

    task = asyncio.ensure_future(whole())

    def interrupt(sig: signal.Signals) -> None:
        signalled.append(sig.name)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)
    try:
        await task
    # Whatever failed (BLE001): the traceback is reported, the phases measured are printed, and the run exits 1.
    except (asyncio.CancelledError, Exception) as error:  # noqa: BLE001 - see above
        out.failure = f"interrupted by {signalled[0]}" if signalled else "".join(traceback.format_exception(error))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if out.failure:
            print(f"logs of the processes kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return out


def print_phase(p: PhaseResult, max_connections: int) -> None:
    kill = f"; killed {' and '.join(p.killed)} after {p.kill_after_s:.1f} s" if p.killed else ""
    rss = ", ".join(f"{n} {b / MIB:.0f} MB" for n, b in sorted(p.worker_rss_peak.items()))
    per_api = "/".join(str(n) for _, n in sorted(p.requests_by_api.items()))
    print(
        f"phase {p.label}: {p.workers} worker(s): {p.exchanges} PAID in {p.seconds:.1f} s = "
        f"{p.per_s:.3f} exchanges/s ({p.per_s / p.workers:.3f} per worker){kill}"
    )
    print(
        f"  requests per API {per_api} ({p.transient_retries} sent again), "
        f"{p.updates_refused} updates refused as not yet; worker RSS peak {rss}"
    )
    print(f"  tasks per worker: {', '.join(f'{n} {t}' for n, t in sorted(p.tasks_by_worker.items()))}")
    connections = describe_connections(p.connections, p.connections_peak_total, max_connections)
    print(f"  postgres connections: {connections}")


def print_report(out: Outcome, args: argparse.Namespace) -> int:
    """The figures and verdicts; the exit code."""
    print(
        f"scale-out: {args.exchanges} exchanges per phase, {args.repeats} repeat(s), "
        f"{DISPATCHERS} dispatchers, {APIS} APIs"
    )
    for p in out.phases:
        print_phase(p, out.max_connections)
    ones = [p.per_s for p in out.phases if p.workers == 1]
    threes = [p.per_s for p in out.phases if p.workers == 3 and p.label != "b-kill"]
    if ones and len(ones) == len(threes):
        print(f"ratio 3 workers / 1 worker: {throughput_ratio(ones, threes).describe()} (timed phases, no kill)")
    drill = next((p for p in out.phases if p.label == "b-kill"), None)
    if drill is not None and not drill.killed:
        print("kill -9: did NOT happen (the phase ended before the batch was a third of its way to PAID)")
        return EXIT_RUN_FAILED
    if out.failure:
        print(f"the run failed; the figures above are those measured before:\n{out.failure}", file=sys.stderr)
        return EXIT_RUN_FAILED
    doubles = out.doubles if out.doubles is not None else Doubles({}, {}, {})
    print(
        f"{len(out.lost)} lost ({out.started} started, {out.started - len(out.lost)} PAID in Postgres)"
        + (f": {', '.join(out.lost)}" if out.lost else "")
    )
    print(
        f"{len(doubles.exchanges)} double (ledger: {out.ledger_payments.get('post', 0)} posts and "
        f"{out.ledger_payments.get('pay_out', 0)} payouts, at most one each per exchange; finance receiver: "
        f"{out.orders_received} payment orders, {out.deliveries_kept} deliveries kept after its dedup)"
        + (f": {doubles.describe()}" if doubles.exchanges else "")
    )
    print(f"cx ledger check: {'clean' if out.ledger_clean else 'NOT CLEAN'}")
    if not out.ledger_clean:
        print(out.ledger_output)
    return exit_code(run_failed=False, lost=len(out.lost), double=len(doubles.exchanges), ledger_clean=out.ledger_clean)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--exchanges", type=int, default=60, help="exchanges driven to PAID in each phase (60)")
    parser.add_argument("--repeats", type=int, default=1, help="timed pairs of phases, 1 worker then 3 workers (1)")
    parser.add_argument("--no-kill", action="store_true", help="no last phase B with the kill -9 mid-run")
    args = parser.parse_args()
    if not 3 <= args.exchanges <= 400 or not 1 <= args.repeats <= 10:
        parser.error("--exchanges 3-400, --repeats 1-10")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        out = asyncio.run(run(configured, args))
    else:
        state = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
        server = EmbeddedPostgres(state / "pgdata")
        try:
            out = asyncio.run(run(server.start(), args))
        finally:
            server.stop()
            shutil.rmtree(state, ignore_errors=True)
    return print_report(out, args)


if __name__ == "__main__":
    sys.exit(main())
