"""`cx reconcile` and `cx temporal setup` as an operator runs them (subprocesses): the run's exit codes, and the
nightly schedule created once, then updated in place (issue 17, item 4)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from datetime import timedelta

from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    ScheduleRange,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from clients.exit_codes import ExitCode
from schemas.reconcile import RECONCILE_SCHEDULE_ID, RECONCILE_WORKFLOW_TYPE, FindingKind
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.reconcile.conftest import World, published, run_reconcile
from tests.reconcile.test_reconcile import read_model_stage


async def _cx(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TEMPORAL_ADDRESS": world.temporal.service_client.config.target_host, "CX_TASK_QUEUE": world.task_queue}
    return await asyncio.to_thread(cx, *args, env=env)


async def test_cx_reconcile_exits_0_when_all_agree_and_7_listing_each_difference(world: World) -> None:
    """Healthy: exit 0, "no differences". One read-model stage edited: exit 7, the kind and the exchange on a
    line, the same in --json; nothing is changed by the run (the edit is still there for the next run)."""
    healthy = await _cx(world, "reconcile", "--settle", "0")
    assert healthy.returncode == ExitCode.OK, healthy.stderr
    assert "no differences" in healthy.stdout
    expected, repair = await read_model_stage(world)
    try:
        broken = await _cx(world, "reconcile", "--settle", "0")
        as_json = await _cx(world, "reconcile", "--settle", "0", "--json")
        still_broken = await run_reconcile(world)
    finally:
        await repair()
    assert broken.returncode == ExitCode.DIFFERENCES, broken.stderr
    assert any(
        FindingKind.WORKFLOW_STAGE.value in line and world.agreement in line for line in broken.stdout.splitlines()
    ), broken.stdout
    assert as_json.returncode == ExitCode.DIFFERENCES, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["differences"], report["by_kind"]) == (False, 1, {"workflow_stage": 1})
    assert {(f.kind, f.application_id) for f in still_broken.findings} == expected


async def test_cx_reconcile_that_does_not_finish_in_time_says_so_and_leaves_the_run_going(world: World) -> None:
    """No worker polls the task queue: after --timeout, one line naming the run, exit 5; the run is still there
    (a worker would pick it up), terminated here by the test."""
    env = {
        "TEMPORAL_ADDRESS": world.temporal.service_client.config.target_host,
        "CX_TASK_QUEUE": f"cx-no-worker-{uuid.uuid4().hex[:8]}",
    }
    result = await asyncio.to_thread(cx, "reconcile", "--timeout", "1", env=env)
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0, line
    assert "not finished after 1 s" in line, line
    match = re.search(r"reconciliation (reconcile-now-\S+):", line)
    assert match, line
    handle = world.temporal.get_workflow_handle(match.group(1))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate(reason="test done: no worker on its task queue")


async def test_cx_reconcile_without_temporal_is_unavailable() -> None:
    """No Temporal server at the address: one line, exit 5, nothing started."""
    result = await asyncio.to_thread(cx, "reconcile", env={"TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    assert result.stderr.strip().count("\n") == 0


async def test_temporal_setup_creates_the_nightly_schedule_then_updates_it_in_place(
    world: World, dev_server_env: WorkflowEnvironment
) -> None:
    """First `cx temporal setup`: the schedule is created (02:00 UTC, overlap SKIP, starting Reconcile on the
    engine's task queue). Second: "updated", still one schedule, and a pause set by ops is kept."""
    handle = dev_server_env.client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    try:
        await handle.delete()  # another test's `cx temporal setup` may have made it on this shared server
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        first = await _cx(world, "temporal", "setup")
        assert first.returncode == ExitCode.OK, first.stderr
        assert f"schedule {RECONCILE_SCHEDULE_ID} created" in first.stdout
        described = await handle.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (RECONCILE_WORKFLOW_TYPE, world.task_queue)
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        spec = described.schedule.spec
        assert spec.time_zone_name == "UTC"
        (calendar,) = spec.calendars
        assert (tuple(calendar.hour), tuple(calendar.minute)) == ((ScheduleRange(2),), (ScheduleRange(0),))
        next_run = described.info.next_action_times[0]
        assert (next_run.hour, next_run.minute, next_run.utcoffset()) == (2, 0, timedelta(0))
        await handle.pause(note="ops: paused during a migration")
        second = await _cx(world, "temporal", "setup")
        assert second.returncode == ExitCode.OK, second.stderr
        assert f"schedule {RECONCILE_SCHEDULE_ID} updated" in second.stdout
        again = await handle.describe()
        assert again.schedule.state.paused
        assert again.schedule.spec.calendars == spec.calendars
        listed = [s async for s in await dev_server_env.client.list_schedules() if s.id == RECONCILE_SCHEDULE_ID]
        assert len(listed) == 1
    finally:
        await handle.delete()


async def test_a_workflow_that_ended_without_its_exchange_is_reported(world: World) -> None:
    """The REVIEW exchange's workflow is terminated (by hand, outside the engine): its row still says REVIEW, so
    the run reports workflow_ended for it. Runs last: a terminated workflow cannot be put back."""
    await published(world.temporal, world.review, Stage.REVIEW)
    await world.temporal.get_workflow_handle(f"exchange:{world.review}").terminate(reason="reconciliation test")
    result = await run_reconcile(world)
    assert {(f.kind, f.application_id) for f in result.findings} == {(FindingKind.WORKFLOW_ENDED, world.review)}
