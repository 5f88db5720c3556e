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
import ctypes
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench import actions, procfs
from bench.actions import ActionCount, DriverCounts, count_actions
from bench.bare import PhaseNotifier
from bench.drivers import (
    READ_MODEL_INTERVAL_S,
    ReadModel,
    Recorder,
    bench_application,
    drive_bare,
    drive_exchange,
    upload_evidence,
)
from bench.plan import BarePlan, plan_from_history
from clients.client import ExchangeClient
from ledger.migrate import apply_migrations
from ledger.store import LedgerStore
from schemas.converter import DATA_CONVERTER
from schemas.search import SEARCH_ATTRIBUTES
from workers.devstack import TEMPORAL_CLI, EmbeddedPostgres, create_database, drop_database, free_port
from workers.seed import PARTNERSHIPS, seed_partnerships

TARGET_ACTIONS_PER_PAID = 30
TARGET_EXCHANGES_RATIO = 0.9
TARGET_INTAKE_RATIO = 2.0
TARGET_INTAKE_S = 120.0
TARGET_INTAKE_SIZE = 1_500
TARGET_RSS_BYTES = 300 * 1024 * 1024
TARGET_RSS_OPEN = 10_000
TARGET_REVIEW_P50_S = 0.300
TARGET_REVIEW_P99_S = 1.0
WARM_UP_EXCHANGES = 2
GRANT_CENTS = 1_100 * 100  # the most one exchange can be paid: budgets are topped up to cover every run
READY_LIMIT_S = 900.0
CHILD_START_LIMIT_S = 90.0
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
# Loaded before any thread exists: the forked child only calls it (see workers/devstack.py).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1

READY_FOR_REVIEW_SQL = """
    SELECT count(DISTINCT application_id) FROM audit_events
     WHERE event = 'reviewers_assigned' AND application_id = ANY($1::text[])"""


def _die_with_parent() -> None:
    """In the child before exec: end with the benchmark, even if it is killed."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p50 of 1..100 is 50, p99 is 99); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class ChildWorker:
    """A worker process of our own: its pid, its log, and how to stop it."""

    name: str
    task_queue: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


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


def start_child(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> ChildWorker:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    return ChildWorker(name=name, task_queue=env.get("CX_TASK_QUEUE", ""), process=process, log_path=log_path)


async def wait_for_poller(client: Client, child: ChildWorker, task_queue: str) -> None:
    """A worker is ready when the server sees it polling its task queue."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + CHILD_START_LIMIT_S
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited at start-up; see {child.log_path}:\n{child.log_path.read_text()[-3000:]}"
            )
        if (await client.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"{child.name} did not poll {task_queue} within {CHILD_START_LIMIT_S:.0f} s; see {child.log_path}"
    )


@contextlib.asynccontextmanager
async def stack(admin_dsn: str, embedded_pid: int | None, work_dir: Path, server: str) -> AsyncIterator[Stack]:
    """Fresh database, dev server, both child workers and this process's notifier; all stopped at the end."""
    dsn = await create_database(admin_dsn, prefix="cx_bench")
    children: list[ChildWorker] = []
    try:
        await apply_migrations(dsn)
        port = free_port()
        env = await WorkflowEnvironment.start_local(
            data_converter=DATA_CONVERTER,
            dev_server_existing_path=str(TEMPORAL_CLI),
            port=port,
            ui=False,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_log_level="error",
        )
        try:
            run = uuid.uuid4().hex[:6]
            address = f"127.0.0.1:{port}"
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "TEMPORAL_", "DATABASE_URL"))}
            ours_env = base_env | {
                "TEMPORAL_ADDRESS": address,
                "DATABASE_URL": dsn,
                "CX_TASK_QUEUE": f"bench-ours-{run}",
                # Payment orders go to the outbox; no dispatcher runs, so nothing is ever sent there.
                "CX_FINANCE_WEBHOOK_URL": "http://127.0.0.1:9/bench-finance-never-called",
                "CX_LOG_FORMAT": "json",
                "CX_STATE_DIR": str(work_dir / "state"),
                "CX_EVIDENCE_DIR": str(work_dir / "evidence"),
            }
            ours = start_child("worker-ours", [str(BIN_DIR / "cx"), "worker"], ours_env, work_dir)
            children.append(ours)
            bare_queue = f"bench-bare-{run}"
            bare_argv = [sys.executable, "-m", "bench.bare_worker", "--address", address, "--task-queue", bare_queue]
            bare = start_child("worker-bare", bare_argv, base_env | {"CX_TASK_QUEUE": bare_queue}, work_dir)
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


@dataclass
class Rep:
    """One measured run of one variant: N workflows driven to their end at once."""

    variant: str
    pair: int
    workflows: int
    seconds: float
    actions: ActionCount
    per_workflow_actions: list[int]
    recorder: Recorder
    cpu_s: dict[str, float]
    machine_busy_s: float
    machine_total_s: float
    worker_rss_peak: int

    @property
    def per_s(self) -> float:
        return self.workflows / self.seconds

    @property
    def activities_per_s(self) -> float:
        return self.actions.by_kind[actions.ACTIVITY] / self.seconds


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
    cpu_before, machine_before = st.cpu_seconds(), procfs.MachineTimes.now()
    started = time.perf_counter()
    with rss_peak(worker.pid) as peak:
        await drive(recorder)
    seconds = time.perf_counter() - started
    cpu_after, machine_after = st.cpu_seconds(), procfs.MachineTimes.now()
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
        self.today = date.today()
        self._next_partnership = 0

    def applications(self, label: str, count: int) -> list[Any]:
        apps = []
        for i in range(count):
            partnership = PARTNERSHIPS[self._next_partnership % len(PARTNERSHIPS)].partnership_id
            self._next_partnership += 1
            apps.append(bench_application(f"{self.run}-{label}-{i:05d}", partnership, self.today))
        return apps

    async def upload(self, application_id: str) -> dict[str, Any]:
        return await upload_evidence(self.st.pool, self.st.evidence_dir, application_id)

    async def ours(self, label: str, count: int, pair: int, *, one_at_a_time: bool = False) -> Rep:
        apps = self.applications(label, count)
        async with ReadModel(self.st.pool).running() as read_model:

            async def drive(recorder: Recorder) -> None:
                calls = [drive_exchange(self.exchanges, a, self.upload, read_model, recorder) for a in apps]
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

    async def warm_up(self) -> tuple[BarePlan, ActionCount]:
        """Two exchanges to PAID (imports, caches, prepared statements); the first one's history is the plan."""
        rep = await self.ours("warm", WARM_UP_EXCHANGES, pair=0)
        history = await self.st.client.get_workflow_handle(f"exchange:{self.run}-warm-00000").fetch_history()
        self.plan = BarePlan(phases=plan_from_history(history.events), notify_task_queue=self.st.notify_task_queue)
        await self.bare("warm", WARM_UP_EXCHANGES, pair=0)
        return self.plan, rep.actions

    async def intake_ours(self, count: int) -> Intake:
        apps = self.applications("intake", count)
        ids = [a.application_id for a in apps]
        rss_before = procfs.rss_bytes(self.st.ours.pid)
        started = time.perf_counter()
        await asyncio.gather(*(self.exchanges.start_exchange(a) for a in apps))
        started_s = time.perf_counter() - started
        marks: list[float] = []
        deadline = started + READY_LIMIT_S
        ready = 0
        while ready < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"intake: {ready} of {count} exchanges in REVIEW after {READY_LIMIT_S:.0f} s")
            await asyncio.sleep(0.1)
            now_ready = await self.st.pool.fetchval(READY_FOR_REVIEW_SQL, ids)
            marks.extend([time.perf_counter() - started] * (now_ready - ready))
            ready = now_ready
        seconds = time.perf_counter() - started
        await asyncio.sleep(3)  # let the worker settle: the last workflow tasks and their garbage
        return Intake("ours", count, seconds, started_s, marks, rss_before, procfs.rss_bytes(self.st.ours.pid))

    async def intake_bare(self, count: int) -> Intake:
        assert self.plan is not None
        plan = self.plan
        first = next(k for k, p in enumerate(plan.phases) if p.messages)
        ids = [f"bare-{self.run}-intake-{i:05d}" for i in range(count)]
        rss_before = procfs.rss_bytes(self.st.bare.pid)
        started = time.perf_counter()
        marks: list[float] = []

        async def parked(workflow_id: str) -> None:
            if plan.phases[first].activities:
                await asyncio.wait_for(self.st.notifier.wait(workflow_id, first), READY_LIMIT_S)
            marks.append(time.perf_counter() - started)

        waits = [asyncio.create_task(parked(w)) for w in ids]
        await asyncio.gather(
            *(self.st.client.start_workflow("BenchBare", plan, id=w, task_queue=self.st.bare.task_queue) for w in ids)
        )
        started_s = time.perf_counter() - started
        await asyncio.gather(*waits)
        seconds = time.perf_counter() - started
        await asyncio.sleep(3)
        return Intake("bare", count, seconds, started_s, marks, rss_before, procfs.rss_bytes(self.st.bare.pid))


@dataclass
class Intake:
    variant: str
    count: int
    seconds: float  # from the first start request until every one waits for its first message
    started_s: float  # until every start request was answered
    marks_s: list[float] = field(repr=False)  # when each became ready
    rss_before: int
    rss_parked: int

    @property
    def rss_per_open_bytes(self) -> float:
        return (self.rss_parked - self.rss_before) / self.count


# --- reporting ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{1000 * seconds:,.0f}"


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _spread_text(values: list[float], unit: str = "x") -> str:
    s = spread(values)
    return f"{s['median']:.2f}{unit} ({s['min']:.2f}-{s['max']:.2f})"


def per_workflow(count: ActionCount, runs: int) -> dict[str, Any]:
    def scaled(counter: Counter[str]) -> dict[str, float]:
        return {k: round(v / runs, 2) for k, v in counter.most_common()}

    return {
        "total": round(count.total / runs, 2),
        "by_kind": scaled(count.by_kind),
        "by_activity": scaled(count.by_activity),
        "local_activities": scaled(count.local_activities),
        "updates": scaled(count.updates),
        "signals": scaled(count.signals),
        "patch_only_marker_tasks": round(count.patch_only_marker_tasks / runs, 2),
    }


@dataclass
class Results:
    args: argparse.Namespace
    server: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    plan: BarePlan | None = None
    warm_actions: ActionCount | None = None
    probe: list[Rep] = field(default_factory=list)
    reps: list[Rep] = field(default_factory=list)
    intake: list[Intake] = field(default_factory=list)
    idle_rss: dict[str, int] = field(default_factory=dict)

    def of(self, variant: str, reps: list[Rep] | None = None) -> list[Rep]:
        return [r for r in (self.reps if reps is None else reps) if r.variant == variant]

    def latencies(self, reps: list[Rep], name: str | None = None) -> list[float]:
        if name is None:
            return [x for r in reps for x in r.recorder.all_latencies_s()]
        return [x for r in reps for x in r.recorder.latencies_s.get(name, [])]

    def paid_actions(self) -> tuple[ActionCount, list[int]]:
        ours = self.of("ours")
        total = sum((r.actions for r in ours), ActionCount(runs=0))
        return total, [n for r in ours for n in r.per_workflow_actions]

    def ratios(self, metric: Callable[[Rep], float]) -> list[float]:
        pairs = sorted({r.pair for r in self.reps})
        out = []
        for p in pairs:
            ours = [r for r in self.reps if r.pair == p and r.variant == "ours"]
            bare = [r for r in self.reps if r.pair == p and r.variant == "bare"]
            if ours and bare:
                out.append(metric(ours[0]) / metric(bare[0]))
        return out

    def targets(self) -> list[tuple[str, bool, str]]:
        """(target, met, what was measured), for every target this run measured."""
        out: list[tuple[str, bool, str]] = []
        if self.reps:
            paid, per = self.paid_actions()
            mean = paid.total / len(per)
            out.append(
                (
                    f"billable actions per PAID exchange <= {TARGET_ACTIONS_PER_PAID}",
                    mean <= TARGET_ACTIONS_PER_PAID,
                    f"{mean:.1f}",
                )
            )
            ratios = self.ratios(lambda r: r.per_s)
            med = statistics.median(ratios)
            out.append(
                (f"exchanges/s >= {TARGET_EXCHANGES_RATIO}x bare", med >= TARGET_EXCHANGES_RATIO, _spread_text(ratios))
            )
        if self.probe:
            lat = self.latencies(self.of("ours", self.probe), "submit_review")
            p50, p99 = quantile(lat, 0.5), quantile(lat, 0.99)
            out.append(
                (
                    f"submit_review p50 < {_ms(TARGET_REVIEW_P50_S)} ms and p99 < {_ms(TARGET_REVIEW_P99_S)} ms at low load",
                    p50 < TARGET_REVIEW_P50_S and p99 < TARGET_REVIEW_P99_S,
                    f"p50 {_ms(p50)} ms, p99 {_ms(p99)} ms over {len(lat)} reviews",
                )
            )
        ours = [i for i in self.intake if i.variant == "ours"]
        bare = [i for i in self.intake if i.variant == "bare"]
        if ours and bare:
            note = (
                ""
                if ours[0].count == TARGET_INTAKE_SIZE
                else f" (target stated for {TARGET_INTAKE_SIZE:,}; run with {ours[0].count:,})"
            )
            ratio = ours[0].seconds / bare[0].seconds
            out.append(
                (
                    f"intake into REVIEW within {TARGET_INTAKE_RATIO}x bare{note}",
                    ratio <= TARGET_INTAKE_RATIO,
                    f"{ratio:.2f}x",
                )
            )
            out.append(
                (
                    f"intake into REVIEW under {TARGET_INTAKE_S:.0f} s{note}",
                    ours[0].seconds < TARGET_INTAKE_S,
                    f"{ours[0].seconds:.1f} s",
                )
            )
        if ours:
            projected = ours[0].rss_before + ours[0].rss_per_open_bytes * TARGET_RSS_OPEN
            how = "measured" if ours[0].count >= TARGET_RSS_OPEN else f"projected from {ours[0].count:,} open"
            rss = ours[0].rss_parked if ours[0].count >= TARGET_RSS_OPEN else projected
            out.append(
                (
                    f"worker RSS with {TARGET_RSS_OPEN:,} open exchanges <= {TARGET_RSS_BYTES // MIB} MB",
                    rss <= TARGET_RSS_BYTES,
                    f"{rss / MIB:,.0f} MB ({how})",
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        def rep_json(r: Rep) -> dict[str, Any]:
            lat = r.recorder.all_latencies_s()
            return {
                "variant": r.variant,
                "pair": r.pair,
                "workflows": r.workflows,
                "seconds": round(r.seconds, 3),
                "workflows_per_s": round(r.per_s, 3),
                "activities_per_s": round(r.activities_per_s, 1),
                "update_p50_ms": round(1000 * quantile(lat, 0.5), 1) if lat else None,
                "update_p99_ms": round(1000 * quantile(lat, 0.99), 1) if lat else None,
                "updates_sent": sum(r.recorder.updates_sent.values()),
                "updates_rejected": r.actions.by_kind[actions.UPDATE_REJECTED],
                "signals_sent": r.recorder.signals_sent,
                "queries_sent": r.recorder.queries_sent,
                "actions_per_workflow": per_workflow(r.actions, r.workflows),
                "cpu_s": {k: round(v, 2) for k, v in r.cpu_s.items()},
                "machine_busy_s": round(r.machine_busy_s, 2),
                "machine_capacity_s": round(r.machine_total_s, 2),
                "worker_rss_peak_mb": round(r.worker_rss_peak / MIB, 1),
            }

        out: dict[str, Any] = {
            "benchmark": "lifecycle",
            "server": self.server,
            "cpus": os.cpu_count(),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "args": {k: v for k, v in vars(self.args).items() if k != "json"},
            "bare_plan": self.plan.model_dump() if self.plan else None,
            "worker_rss_idle_mb": {k: round(v / MIB, 1) for k, v in self.idle_rss.items()},
            "probe": [rep_json(r) for r in self.probe],
            "reps": [rep_json(r) for r in self.reps],
        }
        if self.probe:
            out["low_load_update_ms"] = {
                v: {
                    name: {
                        "p50": round(1000 * quantile(x, 0.5), 1),
                        "p99": round(1000 * quantile(x, 0.99), 1),
                        "n": len(x),
                    }
                    for name, x in _by_name(self.of(v, self.probe)).items()
                }
                for v in ("ours", "bare")
            }
        if self.reps:
            paid, per = self.paid_actions()
            out["actions_per_paid_exchange"] = per_workflow(paid, len(per)) | {"min": min(per), "max": max(per)}
            out["ratio_ours_bare"] = {
                "exchanges_per_s": spread(self.ratios(lambda r: r.per_s)),
                "activities_per_s": spread(self.ratios(lambda r: r.activities_per_s)),
            }
        out["intake"] = [
            {
                "variant": i.variant,
                "count": i.count,
                "seconds": round(i.seconds, 2),
                "starts_answered_s": round(i.started_s, 2),
                "half_ready_s": round(quantile(i.marks_s, 0.5), 2),
                "p90_ready_s": round(quantile(i.marks_s, 0.9), 2),
                "worker_rss_before_mb": round(i.rss_before / MIB, 1),
                "worker_rss_parked_mb": round(i.rss_parked / MIB, 1),
                "worker_rss_per_open_kb": round(i.rss_per_open_bytes / 1024, 1),
            }
            for i in self.intake
        ]
        out["targets"] = [{"target": t, "met": m, "measured": v} for t, m, v in self.targets()]
        return out


def _by_name(reps: list[Rep]) -> dict[str, list[float]]:
    by_name: dict[str, list[float]] = {"all updates": []}
    for r in reps:
        for name, values in r.recorder.latencies_s.items():
            by_name.setdefault(name, []).extend(values)
            by_name["all updates"].extend(values)
    return by_name


def report(res: Results) -> None:
    a = res.args
    print(
        f"lifecycle benchmark (issue 12): {os.cpu_count()} CPUs, load average before {res.load_before}, after {res.load_after}"
    )
    print(f"stack: {res.server}")
    if res.plan:
        print(f"bare plan (read from a PAID exchange's history): {res.plan.describe()}")
    print("worker RSS idle after warm-up: " + ", ".join(f"{k} {v / MIB:,.0f} MB" for k, v in res.idle_rss.items()))
    if res.probe:
        print()
        print(
            f"low load: {a.probe} exchanges driven to PAID one at a time, then {a.probe} bare runs; update round trips (ms)"
        )
        print(f"  {'variant':<6}{'update':<18}{'n':>5}{'p50':>8}{'p99':>8}")
        for variant in ("ours", "bare"):
            for name, values in _by_name(res.of(variant, res.probe)).items():
                print(
                    f"  {variant:<6}{name:<18}{len(values):>5}{_ms(quantile(values, 0.5)):>8}{_ms(quantile(values, 0.99)):>8}"
                )
    if res.reps:
        print()
        print(
            f"lifecycle: {a.exchanges} workflows at once per run, {a.pairs} interleaved pairs (ours = Exchange to PAID, bare = its plan)"
        )
        header = (
            f"  {'run':<8}{'wall s':>8}{'wf/s':>8}{'act/s':>8}{'upd p50':>9}{'upd p99':>9}{'rejected':>9}"
            f"{'actions/wf':>11}{'worker CPU s':>13}{'ms/wf':>7}{'RSS peak MB':>12}{'machine busy':>13}"
        )
        print(header)
        for r in res.reps:
            lat = r.recorder.all_latencies_s()
            worker_cpu = r.cpu_s[f"worker ({r.variant})"]
            busy = r.machine_busy_s / r.machine_total_s if r.machine_total_s else math.nan
            print(
                f"  {r.variant + ' #' + str(r.pair):<8}{r.seconds:>8.1f}{r.per_s:>8.2f}{r.activities_per_s:>8.0f}"
                f"{_ms(quantile(lat, 0.5)):>9}{_ms(quantile(lat, 0.99)):>9}{r.actions.by_kind[actions.UPDATE_REJECTED]:>9}"
                f"{r.actions.total / r.workflows:>11.1f}{worker_cpu:>13.1f}{1000 * worker_cpu / r.workflows:>7.0f}"
                f"{r.worker_rss_peak / MIB:>12.0f}{busy:>13.0%}"
            )
        print(
            f"  ratio ours/bare: exchanges/s {_spread_text(res.ratios(lambda r: r.per_s))}, "
            f"activities/s {_spread_text(res.ratios(lambda r: r.activities_per_s))} (median of pairs, min-max)"
        )
        ours = res.of("ours")
        for name, values in _by_name(ours).items():
            if name in ("submit_review", "all updates"):
                print(
                    f"  update round trip under load (ours, {name}): p50 {_ms(quantile(values, 0.5))} ms, p99 {_ms(quantile(values, 0.99))} ms"
                )
        cpu: Counter[str] = Counter()
        busy_s = total_s = 0.0
        for r in res.reps:
            cpu.update(r.cpu_s)
            busy_s += r.machine_busy_s
            total_s += r.machine_total_s
        ours_s = sum(cpu.values())
        print(
            "  CPU over the measured runs: "
            + ", ".join(f"{k} {v:,.1f} s" for k, v in cpu.most_common())
            + f"; machine busy {busy_s / total_s:.0%} of {total_s:,.0f} CPU-s, of which other people's processes "
            f"{max(0.0, busy_s - ours_s) / total_s:.0%}"
        )
        paid, per = res.paid_actions()
        n = len(per)
        print()
        print(f"billable actions per PAID exchange ({n} histories; rule in bench/actions.py and docs/performance.md):")
        print(
            f"  total {paid.total / n:.1f} (min {min(per)}, max {max(per)}); queries sent by the actors: "
            f"{sum(r.recorder.queries_sent for r in ours)}; rejected updates: {paid.by_kind[actions.UPDATE_REJECTED] / n:.2f}"
        )
        print(
            "  by kind:     "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in paid.by_kind.most_common())
            + f" (of the marker tasks, {paid.patch_only_marker_tasks / n:.1f} recorded only patch markers)"
        )
        print("  by activity: " + ", ".join(f"{k} {v / n:.1f}" for k, v in paid.by_activity.most_common()))
        if paid.local_activities:
            print(
                "  local activities (in marker tasks): "
                + ", ".join(f"{k} {v / n:.1f}" for k, v in paid.local_activities.most_common())
            )
        print(
            "  updates:     "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in paid.updates.most_common())
            + "; signals: "
            + ", ".join(f"{k} {v / n:.1f}" for k, v in paid.signals.most_common())
        )
        bare_runs = res.of("bare")
        if bare_runs:
            b = sum((r.actions for r in bare_runs), ActionCount(runs=0))
            nb = sum(r.workflows for r in bare_runs)
            print(
                f"  bare run for comparison: {b.total / nb:.1f} ({', '.join(f'{k} {v / nb:.1f}' for k, v in b.by_kind.most_common())})"
            )
    if res.intake:
        print()
        print(
            "intake: applications started in a burst, timed until each waits for its first decision "
            "(ours: in REVIEW with reviewers assigned; bare: at its first message)"
        )
        for i in res.intake:
            print(
                f"  {i.variant:<5}{i.count:>6,} in {i.seconds:>6.1f} s (starts answered after {i.started_s:.1f} s; "
                f"half ready at {quantile(i.marks_s, 0.5):.1f} s, 90% at {quantile(i.marks_s, 0.9):.1f} s); worker RSS "
                f"{i.rss_before / MIB:,.0f} MB before, {i.rss_parked / MIB:,.0f} MB with them parked, "
                f"{i.rss_per_open_bytes / 1024:,.1f} kB per open workflow"
            )
        ours_i = [i for i in res.intake if i.variant == "ours"]
        bare_i = [i for i in res.intake if i.variant == "bare"]
        if ours_i and bare_i:
            print(
                f"  ratio ours/bare: {ours_i[0].seconds / bare_i[0].seconds:.2f}x "
                "(the worker caches at most 1,000 workflows; beyond that, parked exchanges live on the server)"
            )
    print()
    for target, met, measured_text in res.targets():
        print(f"target {target}: {'MET' if met else 'NOT MET'} ({measured_text})")


# --- the run ------------------------------------------------------------------------------------


async def server_description(dsn: str, embedded: bool) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    where = "embedded in a temporary directory" if embedded else "DATABASE_URL"
    return f"Temporal dev server (in memory, headless), PostgreSQL {version} ({where}; fsync={fsync}), `cx worker` in a child process"


async def run(admin_dsn: str, embedded_pid: int | None, args: argparse.Namespace) -> int:
    res = Results(args=args, server="", load_before=procfs.load_average())
    work_dir = Path(tempfile.mkdtemp(prefix="cx-bench-lifecycle-"))
    to_pay = WARM_UP_EXCHANGES + args.probe + (0 if args.skip_lifecycle else args.exchanges * args.pairs)
    try:
        res.server = await server_description(admin_dsn, embedded_pid is not None)
        async with stack(admin_dsn, embedded_pid, work_dir, res.server) as st:
            await seed(st.pool, to_pay)
            info = await st.client.workflow_service.get_system_info(GetSystemInfoRequest())
            res.server = res.server.replace("Temporal dev server", f"Temporal dev server {info.server_version}")
            bench = Lifecycle(st)
            _progress("warm-up: 2 exchanges to PAID, then 2 bare runs")
            res.plan, res.warm_actions = await bench.warm_up()
            res.idle_rss = {"ours": procfs.rss_bytes(st.ours.pid), "bare": procfs.rss_bytes(st.bare.pid)}
            if args.probe:
                _progress(f"low load: {args.probe} exchanges one at a time, then {args.probe} bare runs")
                res.probe.append(await bench.ours("probe", args.probe, 0, one_at_a_time=True))
                res.probe.append(await bench.bare("probe", args.probe, 0, one_at_a_time=True))
            if not args.skip_lifecycle:
                for pair in range(1, args.pairs + 1):
                    _progress(f"pair {pair}/{args.pairs}: {args.exchanges} exchanges at once")
                    res.reps.append(await bench.ours(f"o{pair}", args.exchanges, pair))
                    _progress(f"pair {pair}/{args.pairs}: {args.exchanges} bare runs at once")
                    res.reps.append(await bench.bare(f"b{pair}", args.exchanges, pair))
            if not args.skip_intake:
                _progress(f"intake: {args.intake:,} applications in a burst")
                res.intake.append(await bench.intake_ours(args.intake))
                _progress(f"intake: {args.intake:,} bare runs in a burst")
                res.intake.append(await bench.intake_bare(args.intake))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    res.load_after = procfs.load_average()
    report(res)
    if args.json:
        print(json.dumps(res.to_json(), separators=(",", ":")))
    return 0 if all(met for _, met, _ in res.targets()) else 2


def _progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


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
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line, last")
    args = parser.parse_args()
    if (
        not 1 <= args.exchanges <= 5_000
        or not 1 <= args.pairs <= 10
        or not 1 <= args.intake <= 20_000
        or not 0 <= args.probe <= 100
    ):
        parser.error("--exchanges 1-5000, --pairs 1-10, --intake 1-20000, --probe 0-100")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return asyncio.run(run(configured, None, args))
    state = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
    server = EmbeddedPostgres(state / "pgdata")
    try:
        admin_dsn = server.start()
        return asyncio.run(run(admin_dsn, procfs.child_named(os.getpid(), "postgres"), args))
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
