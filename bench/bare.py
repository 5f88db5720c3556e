"""The bare baseline of the lifecycle benchmark: a workflow doing what an exchange does in Temporal, and nothing else.

`bench.plan.plan_from_history` reads one PAID exchange's history as phases: each phase runs some
activities (and starts some timers), then waits for the messages (updates, signals) that people and
finance send at that point, one after the other; after the last messages, the closing activities run.
`BareWorkflow` executes such a plan with no-op activities, long timers that are cancelled when the
phase's messages have arrived (as an exchange's deadline timers are), an update handler and a signal
handler that only count. So a bare run has the same number of activities, updates, signals and timers
as the exchange it was read from, and the plan follows the workflow as it changes.

What it leaves out, on purpose, is what the lead may optimise away or must pay anyway: search-attribute
upserts, local activities and markers (billed in the exchange, absent from the bare run), update
validators, payloads (a bare update carries an int and answers an int; an exchange's answers the whole
status), database work and the business rules. The activities an exchange's update handlers run (each
records an audit row) are run by the bare main loop before the phase's messages, so a bare update's
round trip is the floor: Temporal's own round trip for a handler that answers at once.

The driver learns that a bare run reached a phase's messages without a query: the last activity before
them runs on `notify_task_queue`, served by the driver's own process (`PhaseNotifier`), and the driver
notices it at its next tick, as the exchange's actors notice a stage at their next read of the read
model (bench/drivers.py `ReadModel`, same interval): an update sent while the workflow still runs the
task that follows the activity waits for that task, in both runs alike.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from bench.plan import BarePlan

BARE_WORKFLOW_TYPE = "BenchBare"
NOOP_ACTIVITY = "bench_noop"
PHASE_REACHED_ACTIVITY = "bench_phase_reached"
UPDATE_NAME = "act"
SIGNAL_NAME = "notice"
ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Long enough never to fire during a benchmark: each one is cancelled when its phase's messages arrive.
TIMER_LENGTH = timedelta(days=30)


@activity.defn(name=NOOP_ACTIVITY)
async def noop() -> None:
    """Returns at once: the cost of an activity to Temporal and to a worker, without any work."""


@workflow.defn(name=BARE_WORKFLOW_TYPE)
class BareWorkflow:
    """Runs a BarePlan: per phase, its timers and activities, then waits for its messages; returns their count.

    Messages: update `act(index)` and signal `notice(index)`, `index` counting every message of the plan
    from 0; each is held until the run has reached its phase, then counted. No queries.
    """

    @workflow.init
    def __init__(self, plan: BarePlan) -> None:
        self._open_phase = -1
        self._received = 0
        self._phase_of = [k for k, phase in enumerate(plan.phases) for _ in phase.messages]

    @workflow.run
    async def run(self, plan: BarePlan) -> int:
        expected = 0
        for k, phase in enumerate(plan.phases):
            # Started with the phase's first activity, so they are in history before any message can end them.
            timers = [asyncio.create_task(workflow.sleep(TIMER_LENGTH)) for _ in range(phase.timers)]
            for i in range(phase.activities):
                last_before_messages = bool(phase.messages) and i == phase.activities - 1
                if last_before_messages and plan.notify_task_queue:
                    await workflow.execute_activity(
                        PHASE_REACHED_ACTIVITY,
                        args=[workflow.info().workflow_id, k],
                        task_queue=plan.notify_task_queue,
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                    )
                else:
                    await workflow.execute_activity(NOOP_ACTIVITY, start_to_close_timeout=ACTIVITY_TIMEOUT)
            expected += len(phase.messages)
            self._open_phase = k
            await self._received_at_least(expected)
            for timer in timers:
                timer.cancel()
        return self._received

    async def _received_at_least(self, count: int) -> None:
        await workflow.wait_condition(lambda: self._received >= count)

    @workflow.update(name=UPDATE_NAME)
    async def act(self, index: int) -> int:
        await self._reached(index)
        self._received += 1
        return self._received

    @workflow.signal(name=SIGNAL_NAME)
    async def notice(self, index: int) -> None:
        await self._reached(index)
        self._received += 1

    async def _reached(self, index: int) -> None:
        phase = self._phase_of[index]
        await workflow.wait_condition(lambda: self._open_phase >= phase)


class PhaseNotifier:
    """The driver's side of `bench_phase_reached`: an event per (workflow id, phase), set when the activity
    runs and noticed at the driver's next tick of `tick_s` (0: at once)."""

    def __init__(self, tick_s: float) -> None:
        self._events: dict[tuple[str, int], asyncio.Event] = {}
        self._tick_s = tick_s

    def _event(self, workflow_id: str, phase: int) -> asyncio.Event:
        return self._events.setdefault((workflow_id, phase), asyncio.Event())

    @activity.defn(name=PHASE_REACHED_ACTIVITY)
    async def phase_reached(self, workflow_id: str, phase: int) -> None:
        self._event(workflow_id, phase).set()

    async def wait(self, workflow_id: str, phase: int) -> None:
        await self._event(workflow_id, phase).wait()
        del self._events[(workflow_id, phase)]
        if self._tick_s > 0:
            await asyncio.sleep(self._tick_s - asyncio.get_running_loop().time() % self._tick_s)
