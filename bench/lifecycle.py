"""Benchmark of the exchange lifecycle against a bare workflow (issue 12, items 1 and 2): not a test.

    .venv/bin/python -m bench.lifecycle [--exchanges 100] [--pairs 2] [--intake 1500] [--probe 5]
                                        [--skip-lifecycle] [--skip-intake] [--json]

Starts its own stack: Postgres (DATABASE_URL's server, in a fresh database dropped at the end, or an
embedded one in a temporary directory), the Temporal dev server (headless, in memory), the exchange
worker as `cx worker` in a child process, and the bare worker (bench/bare_worker.py) in another, so
that each one's CPU time and memory are read apart. Then, in this order:

1. warm-up: two exchanges to PAID; the first one's history gives the bare plan (bench/plan.py), so the
   baseline has the activities, updates, signals and timers the workflow has today;
2. low load (`--probe`): exchanges driven to PAID one at a time, then as many bare runs: update round
   trips with nothing else running;
3. lifecycle (`--pairs` pairs, interleaved ours, bare, ours, bare): N exchanges driven to PAID at once
   by automatic actors (bench/drivers.py), then N bare runs of the plan, likewise; exchanges/s,
   activities/s, update round trips, CPU by process, worker memory, and the billable actions of
   every PAID exchange counted from its history (bench/actions.py states the rule);
4. intake: `--intake` applications started in a burst, timed until every one waits in REVIEW with
   its reviewers assigned (read from the read model), then as many bare runs timed until each waits
   for its first message; the worker's memory with them all parked.

Ratios are ours / bare for each pair, shown as the median with the min-max spread. Targets (issue 12):
at most 30 billable actions per PAID exchange, exchanges/s at least 0.9x bare, intake of 1,500 into
REVIEW within 2x bare and under 2 minutes, worker RSS with 10,000 open exchanges at most 300 MB,
submit_review round trip p50 < 300 ms and p99 < 1 s at low load. Exit code 0 when all are met, 2 when
one is not, 1 when the run itself failed (an exchange not PAID, a wait that timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.worker import Worker

from bench import actions, procfs
from bench.actions import ActionCount, DriverCounts, count_actions
from bench.bare import BARE_WORKFLOW_TYPE, PhaseNotifier
from bench.children import BIN_DIR, ChildWorker, progress, start_child, start_dev_server, wait_for_poller
from bench.drivers import (
    READ_MODEL_INTERVAL_S,
    READY_FOR_REVIEW_SQL,
    WAIT_LIMIT_S,
    Finance,
    ReadModel,
    Recorder,
    bench_application,
    drive_bare,
    drive_exchange,
    upload_evidence,
)
from bench.plan import BarePlan, plan_from_history
from bench.report import TARGET_INTAKE_SIZE, Intake, Rep, Results, print_report
from clients.client import ExchangeClient
from ledger.checks import check_ledger
from ledger.migrate import apply_migrations
from ledger.store import LedgerStore
from schemas.stages import Stage
from workers.devstack import EmbeddedPostgres, create_database, drop_database, free_port
from workers.seed import PARTNERSHIPS, seed_partnerships

WARM_UP_EXCHANGES = 2
GRANT_CENTS = 1_100 * 100  # the most one exchange can be paid: budgets are topped up to cover every run
READY_LIMIT_S = 900.0  # for one burst of exchanges into REVIEW
START_BATCH = 500  # start requests in flight at once in a burst
PARK_BATCH = 500  # exchanges parked at a time by --park (fewer than the worker's cache holds)
INTAKE_POLL_S = 0.1  # how often the intake reads how many exchanges wait in REVIEW
SETTLE_S = 3.0  # after a burst, before reading the worker's memory: its last tasks and their garbage
MIB = 1024 * 1024
READY_COUNT_SQL = f"SELECT count(*) FROM ({READY_FOR_REVIEW_SQL}) ready"  # noqa: S608 - constant SQL only


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    client: Client
    pool: asyncpg.Pool
    dsn: str
    server: str
    ours: ChildWorker
    bare: ChildWorker
    notifier: PhaseNotifier
    notify_task_queue: str
    evidence_dir: Path
    temporal_pid: int | None
    postgres_pid: int | None

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of each part of the stack (and of this process: the actors and the bare notifier)."""
        children = procfs.children_map()
        parts = {
            "worker (ours)": procfs.tree_cpu_seconds(self.ours.pid, children),
            "worker (bare)": procfs.tree_cpu_seconds(self.bare.pid, children),
            "temporal server": procfs.tree_cpu_seconds(self.temporal_pid, children) if self.temporal_pid else 0.0,
            "bench driver": procfs.cpu_seconds(os.getpid(), reaped=False),
        }
        if self.postgres_pid:
            parts["postgres"] = procfs.tree_cpu_seconds(self.postgres_pid, children)
        return parts


# The SDK's worker counters the benchmark reads (summed over labels), and the cache size gauge.
WORKER_COUNTERS = {
    "temporal_workflow_task_execution_latency_count": "workflow tasks",
    "temporal_sticky_cache_hit_total": "cache hits",
    "temporal_sticky_cache_miss_total": "cache misses",
    "temporal_sticky_cache_total_forced_eviction_total": "forced evictions",
    "temporal_activity_task_received_total": "activity tasks",
}
CACHE_SIZE_GAUGE = "temporal_sticky_cache_size"


async def worker_counters(child: ChildWorker) -> dict[str, float]:
    """The child's SDK counters now (Prometheus text), by their names in WORKER_COUNTERS."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://{child.metrics_address}/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    counters = dict.fromkeys([*WORKER_COUNTERS.values(), "cached now"], 0.0)
    for line in (await asyncio.to_thread(fetch)).splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.split("{", 1)[0].split(" ", 1)[0], float(line.rsplit(" ", 1)[1])
        if name in WORKER_COUNTERS:
            counters[WORKER_COUNTERS[name]] += value
        elif name == CACHE_SIZE_GAUGE:
            counters["cached now"] += value
    return counters


def counters_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the counters counted in between; the cache size as it is after."""
    return {k: after[k] - before[k] for k in WORKER_COUNTERS.values()} | {"cached now": after["cached now"]}


@contextlib.asynccontextmanager
async def stack(
    admin_dsn: str, embedded_pid: int | None, work_dir: Path, server: str, worker_env: dict[str, str]
) -> AsyncIterator[Stack]:
    """Fresh database, dev server, both child workers and this process's notifier; all stopped at the end."""
    dsn = await create_database(admin_dsn, prefix="cx_bench")
    children: list[ChildWorker] = []
    try:
        await apply_migrations(dsn)
        env, port = await start_dev_server()
        try:
            run = uuid.uuid4().hex[:6]
            address = f"127.0.0.1:{port}"
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "TEMPORAL_", "DATABASE_URL"))}
            ours_metrics, bare_metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            ours_env = (
                base_env
                | {
                    "CX_METRICS_ADDRESS": ours_metrics,
                    "TEMPORAL_ADDRESS": address,
                    "DATABASE_URL": dsn,
                    "CX_TASK_QUEUE": f"bench-ours-{run}",
                    # Payment orders go to the outbox; no dispatcher runs, so nothing is ever sent there.
                    "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/bench-finance-never-called",
                    "CX_LOG_FORMAT": "json",
                    "CX_STATE_DIR": str(work_dir / "state"),
                    "CX_EVIDENCE_DIR": str(work_dir / "evidence"),
                }
                | worker_env
            )
            ours = start_child("worker-ours", [str(BIN_DIR / "cx"), "worker"], ours_env, work_dir, ours_metrics)
            children.append(ours)
            bare_queue = f"bench-bare-{run}"
            bare_argv = [sys.executable, "-m", "bench.bare_worker", "--address", address, "--task-queue", bare_queue]
            bare_argv += ["--metrics-address", bare_metrics]
            bare_env = base_env | {"CX_TASK_QUEUE": bare_queue}
            bare = start_child("worker-bare", bare_argv, bare_env, work_dir, bare_metrics)
            children.append(bare)
            await wait_for_poller(env.client, ours, ours.task_queue)
            await wait_for_poller(env.client, bare, bare.task_queue)
            notifier = PhaseNotifier(tick_s=READ_MODEL_INTERVAL_S)
            notify_queue = f"bench-notify-{run}"
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
            try:
                async with Worker(env.client, task_queue=notify_queue, activities=[notifier.phase_reached]):
                    yield Stack(
                        client=env.client,
                        pool=pool,
                        dsn=dsn,
                        server=server,
                        ours=ours,
                        bare=bare,
                        notifier=notifier,
                        notify_task_queue=notify_queue,
                        evidence_dir=work_dir / "evidence",
                        temporal_pid=procfs.child_named(os.getpid(), "temporal"),
                        postgres_pid=embedded_pid,
                    )
            finally:
                await pool.close()
        finally:
            for child in children:
                child.stop()
            await env.shutdown()
    finally:
        await drop_database(admin_dsn, dsn)


async def seed(pool: asyncpg.Pool, exchanges_to_pay: int) -> None:
    """The 15 partnerships with their review panels and budgets, topped up to pay every exchange of the run."""
    store = LedgerStore(pool)
    await seed_partnerships(pool, store)
    per_partnership = math.ceil(exchanges_to_pay / len(PARTNERSHIPS)) * GRANT_CENTS * 2
    for p in PARTNERSHIPS:
        await store.allocate(
            idempotency_key=f"{p.partnership_id}:allocate:bench",
            partnership_id=p.partnership_id,
            amount_cents=per_partnership,
        )


# --- measuring ----------------------------------------------------------------------------------


@contextlib.contextmanager
def rss_peak(pid: int, interval_s: float = 0.2) -> Iterator[list[int]]:
    """Sample a process's RSS while the block runs; the list holds the peak when it ends."""
    peak = [procfs.rss_bytes(pid)]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], procfs.rss_bytes(pid))
            await asyncio.sleep(interval_s)

    task = asyncio.get_running_loop().create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()
        peak[0] = max(peak[0], procfs.rss_bytes(pid))


async def measured(
    st: Stack, variant: str, pair: int, workflow_ids: list[str], drive: Callable[[Recorder], Awaitable[None]]
) -> Rep:
    """Run `drive`, timing it and reading CPU and memory around it, then count the actions of every run."""
    recorder = Recorder()
    worker = st.ours if variant == "ours" else st.bare
    counters_before = await worker_counters(worker)
    cpu_before, machine_before = st.cpu_seconds(), procfs.MachineTimes.now()
    started = time.perf_counter()
    with rss_peak(worker.pid) as peak:
        await drive(recorder)
    seconds = time.perf_counter() - started
    cpu_after, machine_after = st.cpu_seconds(), procfs.MachineTimes.now()
    counters = counters_delta(counters_before, await worker_counters(worker))
    counts = await count_all(st.client, workflow_ids, recorder)
    return Rep(
        variant=variant,
        pair=pair,
        workflows=len(workflow_ids),
        seconds=seconds,
        actions=sum(counts, ActionCount(runs=0)),
        per_workflow_actions=[c.total for c in counts],
        recorder=recorder,
        cpu_s={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        machine_busy_s=machine_after.busy_s - machine_before.busy_s,
        machine_total_s=machine_after.total_s - machine_before.total_s,
        worker_rss_peak=peak[0],
        worker_counters=counters,
    )


async def count_all(client: Client, workflow_ids: list[str], recorder: Recorder) -> list[ActionCount]:
    """Each run's billable actions from its history, plus the updates its validators rejected."""
    limit = asyncio.Semaphore(16)

    async def one(workflow_id: str) -> ActionCount:
        async with limit:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        counted = count_actions(history.events)
        sent = recorder.updates_sent[workflow_id]
        rejected = max(0, sent - counted.by_kind[actions.UPDATE])
        return counted.with_driver(DriverCounts(updates_sent=sent, updates_rejected=rejected, queries_sent=0))

    return list(await asyncio.gather(*(one(w) for w in workflow_ids)))


class Lifecycle:
    """The runs of one benchmark: ids, applications and evidence prepared before each timed run."""

    def __init__(self, st: Stack, plan: BarePlan | None = None) -> None:
        self.st = st
        self.exchanges = ExchangeClient(st.client, st.ours.task_queue)
        self.plan = plan
        self.run = uuid.uuid4().hex[:6]
        self.today = datetime.now(UTC).date()
        self._next_partnership = 0

    def applications(self, label: str, count: int) -> list[Any]:
        apps = []
        for i in range(count):
            partnership = PARTNERSHIPS[self._next_partnership % len(PARTNERSHIPS)].partnership_id
            self._next_partnership += 1
            apps.append(bench_application(f"{self.run}-{label}-{i:05d}", partnership, self.today))
        return apps

    async def paid(self, application_id: str) -> None:
        """The workflow's result (through Temporal), as the lifecycle bench has always waited for it."""
        outcome = await asyncio.wait_for(self.exchanges.result(application_id), WAIT_LIMIT_S)
        if outcome.stage is not Stage.PAID:
            raise RuntimeError(f"{application_id}: ended {outcome.stage.value}, not PAID ({outcome.reason})")

    async def upload(self, application_id: str) -> dict[str, Any]:
        return await upload_evidence(self.st.pool, self.st.evidence_dir, application_id)

    async def ours(self, label: str, count: int, pair: int, *, one_at_a_time: bool = False) -> Rep:
        apps = self.applications(label, count)
        async with ReadModel(self.st.pool).running() as read_model:

            async def drive(recorder: Recorder) -> None:
                finance = Finance(payment_order=read_model.payment_order, paid=self.paid)
                calls = [drive_exchange(self.exchanges, a, self.upload, read_model, recorder, finance) for a in apps]
                if one_at_a_time:
                    for call in calls:
                        await call
                else:
                    await asyncio.gather(*calls)

            ids = [f"exchange:{a.application_id}" for a in apps]
            return await measured(self.st, "ours", pair, ids, drive)

    async def bare(self, label: str, count: int, pair: int, *, one_at_a_time: bool = False) -> Rep:
        assert self.plan is not None, "the bare plan is read from a warm-up exchange first"
        plan = self.plan
        ids = [f"bare-{self.run}-{label}-{i:05d}" for i in range(count)]

        async def drive(recorder: Recorder) -> None:
            calls = [
                drive_bare(self.st.client, plan, w, self.st.bare.task_queue, self.st.notifier, recorder) for w in ids
            ]
            if one_at_a_time:
                for call in calls:
                    await call
            else:
                await asyncio.gather(*calls)

        return await measured(self.st, "bare", pair, ids, drive)

    async def warm_up(self) -> BarePlan:
        """Two exchanges to PAID (imports, caches, prepared statements); the first one's history is the plan."""
        await self.ours("warm", WARM_UP_EXCHANGES, pair=0)
        history = await self.st.client.get_workflow_handle(f"exchange:{self.run}-warm-00000").fetch_history()
        self.plan = BarePlan(phases=plan_from_history(history.events), notify_task_queue=self.st.notify_task_queue)
        await self.bare("warm", WARM_UP_EXCHANGES, pair=0)
        return self.plan

    async def intake_ours(self, count: int) -> Intake:
        """`count` applications started at once (START_BATCH start requests in flight), timed until each
        waits in REVIEW with its reviewers assigned; then the worker's memory with them parked."""
        apps = self.applications("intake", count)
        return await self._burst("intake", self.st.ours, count, count, lambda started: self._into_review(apps, started))

    async def park(self, count: int, open_before: int) -> Intake:
        """`count` more exchanges into REVIEW, PARK_BATCH at a time (each batch parked before the next
        starts, so that the worker's cache is not flooded): its memory with them all open. Not a race."""
        apps = self.applications("park", count)

        async def batches(started: float) -> tuple[float | None, list[float]]:
            marks: list[float] = []
            for first in range(0, count, PARK_BATCH):
                _, batch_marks = await self._into_review(apps[first : first + PARK_BATCH], started)
                marks += batch_marks
                rss_mb = procfs.rss_bytes(self.st.ours.pid) / MIB
                progress(f"  {open_before + first + len(batch_marks):,} open, worker RSS {rss_mb:,.0f} MB")
            return None, marks

        return await self._burst("park", self.st.ours, count, open_before + count, batches)

    async def intake_bare(self, count: int) -> Intake:
        """As many bare runs started at once, timed until each waits for its first message."""
        assert self.plan is not None
        plan = self.plan
        first = next(k for k, p in enumerate(plan.phases) if p.messages)
        ids = [f"bare-{self.run}-intake-{i:05d}" for i in range(count)]

        async def burst(started: float) -> tuple[float | None, list[float]]:
            marks: list[float] = []

            async def parked(workflow_id: str) -> None:
                if plan.phases[first].activities:
                    await asyncio.wait_for(self.st.notifier.wait(workflow_id, first), READY_LIMIT_S)
                marks.append(time.perf_counter() - started)

            waits = [asyncio.create_task(parked(w)) for w in ids]
            limit = asyncio.Semaphore(START_BATCH)

            async def start(workflow_id: str) -> None:
                async with limit:
                    await self.st.client.start_workflow(
                        BARE_WORKFLOW_TYPE, plan, id=workflow_id, task_queue=self.st.bare.task_queue
                    )

            await asyncio.gather(*(start(w) for w in ids))
            starts_answered_s = time.perf_counter() - started
            await asyncio.gather(*waits)
            return starts_answered_s, marks

        return await self._burst("bare", self.st.bare, count, count, burst)

    async def _burst(
        self,
        variant: str,
        worker: ChildWorker,
        count: int,
        open_after: int,
        run: Callable[[float], Awaitable[tuple[float | None, list[float]]]],
    ) -> Intake:
        """Time `run` (given its start instant), read CPU around it, then the worker's memory and counters."""
        counters_before = await worker_counters(worker)
        rss_before = procfs.rss_bytes(worker.pid)
        cpu_before, machine_before = self.st.cpu_seconds(), procfs.MachineTimes.now()
        started = time.perf_counter()
        starts_answered_s, marks = await run(started)
        seconds = time.perf_counter() - started
        cpu_after, machine_after = self.st.cpu_seconds(), procfs.MachineTimes.now()
        await asyncio.sleep(SETTLE_S)
        return Intake(
            variant=variant,
            count=count,
            seconds=seconds,
            starts_answered_s=starts_answered_s,
            marks_s=marks,
            rss_before=rss_before,
            rss_parked=procfs.rss_bytes(worker.pid),
            open_after=open_after,
            worker_counters=counters_delta(counters_before, await worker_counters(worker)),
            cpu_s={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
            machine_busy_s=machine_after.busy_s - machine_before.busy_s,
            machine_total_s=machine_after.total_s - machine_before.total_s,
        )

    async def _into_review(self, apps: list[Any], started: float) -> tuple[float | None, list[float]]:
        """Start the exchanges, then read the read model until each waits in REVIEW with its reviewers
        assigned; when the starts were answered and when each one was seen waiting, from `started`."""
        ids = [a.application_id for a in apps]
        limit = asyncio.Semaphore(START_BATCH)

        async def start(app: Any) -> None:
            async with limit:
                await self.exchanges.start_exchange(app)

        await asyncio.gather(*(start(a) for a in apps))
        starts_answered_s = time.perf_counter() - started
        marks: list[float] = []
        deadline = time.perf_counter() + READY_LIMIT_S
        while len(marks) < len(ids):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(marks)} of {len(ids)} exchanges in REVIEW after {READY_LIMIT_S:.0f} s")
            await asyncio.sleep(INTAKE_POLL_S)
            ready = await self.st.pool.fetchval(READY_COUNT_SQL, ids)
            marks.extend([time.perf_counter() - started] * (ready - len(marks)))
        return starts_answered_s, marks


# --- the run ------------------------------------------------------------------------------------


async def server_description(dsn: str, embedded: bool) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    where = "embedded in a temporary directory" if embedded else "DATABASE_URL"
    return (
        f"Temporal dev server (in memory, headless); PostgreSQL {version} ({where}; fsync={fsync}); "
        "`cx worker` and the bare worker in child processes"
    )


async def run(admin_dsn: str, embedded_pid: int | None, args: argparse.Namespace) -> Results:
    res = Results(args=args, server="", load_before=procfs.load_average())
    work_dir = Path(tempfile.mkdtemp(prefix="cx-bench-lifecycle-"))
    to_pay = WARM_UP_EXCHANGES + args.probe + (0 if args.skip_lifecycle else args.exchanges * args.pairs)
    try:
        res.server = await server_description(admin_dsn, embedded_pid is not None)
        worker_env = dict(setting.split("=", 1) for setting in args.worker_env)
        if worker_env:
            res.server += "; worker tuning " + ", ".join(f"{k}={v}" for k, v in sorted(worker_env.items()))
        async with stack(admin_dsn, embedded_pid, work_dir, res.server, worker_env) as st:
            await seed(st.pool, to_pay)
            info = await st.client.workflow_service.get_system_info(GetSystemInfoRequest())
            res.server = res.server.replace("Temporal dev server", f"Temporal dev server {info.server_version}")
            # SIGINT or SIGTERM stops the measuring, and still stops the servers and reports what was measured.
            measuring = asyncio.ensure_future(measure_all(Lifecycle(st), res))
            loop = asyncio.get_running_loop()
            signalled: list[str] = []

            def interrupt(sig: signal.Signals) -> None:
                signalled.append(sig.name)
                measuring.cancel()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, interrupt, sig)
            try:
                await measuring
            # Whatever failed (BLE001): the traceback is kept in the report, what was measured is still
            # reported, and the run exits 1.
            except (asyncio.CancelledError, Exception) as error:  # noqa: BLE001 - see above
                interrupted = f"interrupted by {signalled[0]}" if signalled else None
                res.failure = interrupted or "".join(traceback.format_exception(error))
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    res.load_after = procfs.load_average()
    return res


async def measure_all(bench: Lifecycle, res: Results) -> None:
    """Every part the options ask for, in order, each one's figures added to `res` as soon as it ends."""
    args, st = res.args, bench.st
    progress("warm-up: 2 exchanges to PAID, then 2 bare runs")
    res.plan = await bench.warm_up()
    res.idle_rss = {"ours": procfs.rss_bytes(st.ours.pid), "bare": procfs.rss_bytes(st.bare.pid)}
    if args.probe:
        progress(f"low load: {args.probe} exchanges one at a time, then {args.probe} bare runs")
        res.probe.append(await bench.ours("probe", args.probe, 0, one_at_a_time=True))
        res.probe.append(await bench.bare("probe", args.probe, 0, one_at_a_time=True))
    if not args.skip_lifecycle:
        for pair in range(1, args.pairs + 1):
            for variant in ("ours", "bare"):
                progress(f"pair {pair}/{args.pairs}: {args.exchanges} {variant} runs at once")
                run = bench.ours if variant == "ours" else bench.bare
                rep = await run(f"{variant[0]}{pair}", args.exchanges, pair)
                res.reps.append(rep)
                progress(
                    f"  {rep.workflows} in {rep.seconds:.1f} s: {rep.per_s:.2f}/s, "
                    f"{rep.actions.total / rep.workflows:.1f} actions each"
                )
    if not args.skip_intake:
        for variant in ("intake", "bare"):
            progress(f"intake: {args.intake:,} {'applications' if variant == 'intake' else 'bare runs'} in a burst")
            intake = await (bench.intake_ours(args.intake) if variant == "intake" else bench.intake_bare(args.intake))
            res.intake.append(intake)
            progress(
                f"  {intake.count:,} waiting after {intake.seconds:.1f} s; worker RSS {intake.rss_parked / MIB:,.0f} MB"
            )
    if args.park:
        open_before = 0 if args.skip_intake else args.intake
        progress(f"park: {args.park:,} more exchanges into REVIEW, for the worker's memory")
        park = await bench.park(args.park, open_before)
        res.intake.append(park)
        progress(f"  {park.open_after:,} open; worker RSS {park.rss_parked / MIB:,.0f} MB")
    report = await check_ledger(st.pool)
    res.ledger_breaches = [check.name for check in report.checks if not check.ok]
    progress(f"cx ledger check: {', '.join(res.ledger_breaches) or 'clean'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--exchanges", type=int, default=100, help="exchanges driven to PAID at once per run (100)")
    parser.add_argument("--pairs", type=int, default=2, help="interleaved pairs of runs, ours then bare (2)")
    parser.add_argument("--intake", type=int, default=TARGET_INTAKE_SIZE, help="applications started in a burst (1500)")
    parser.add_argument(
        "--probe", type=int, default=5, help="exchanges driven one at a time for low-load round trips (5)"
    )
    parser.add_argument("--skip-lifecycle", action="store_true", help="no lifecycle pairs")
    parser.add_argument("--skip-intake", action="store_true", help="no intake burst")
    parser.add_argument(
        "--park", type=int, default=0, help="then open this many more exchanges, parked in REVIEW, for memory (0)"
    )
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line, last")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="CX_WORKER_X=V",
        help="a tuning variable for our worker, e.g. CX_WORKER_ACTIVITY_SLOTS=32 (repeatable)",
    )
    args = parser.parse_args()
    for setting in args.worker_env:
        if not setting.startswith("CX_WORKER_") or "=" not in setting:
            parser.error(f"--worker-env {setting!r}: must be CX_WORKER_<NAME>=<value>")
    if (
        not 1 <= args.exchanges <= 5_000
        or not 1 <= args.pairs <= 10
        or not 1 <= args.intake <= 20_000
        or not 0 <= args.probe <= 100
        or not 0 <= args.park <= 20_000
    ):
        parser.error("--exchanges 1-5000, --pairs 1-10, --intake 1-20000, --probe 0-100, --park 0-20000")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        res = asyncio.run(run(configured, None, args))
    else:
        state = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
        server = EmbeddedPostgres(state / "pgdata")
        try:
            admin_dsn = server.start()
            res = asyncio.run(run(admin_dsn, procfs.child_named(os.getpid(), "postgres"), args))
        finally:
            server.stop()
            shutil.rmtree(state, ignore_errors=True)
    # Printed once every server has stopped, so that the JSON line is the last line of the output.
    print_report(res)
    if args.json:
        print(json.dumps(res.to_json(), separators=(",", ":")))
    if res.failure:
        print(f"the run failed; the figures above are those measured before:\n{res.failure}", file=sys.stderr)
        return 1
    return 0 if all(met for _, met, _ in res.targets()) else 2


if __name__ == "__main__":
    sys.exit(main())
