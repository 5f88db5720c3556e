"""The engine's Temporal Schedules, created or updated by `cx temporal setup` (idempotent).

One for now: `cx-reconcile-nightly` starts the Reconcile workflow (workflows/reconcile.py) at 02:00 UTC on
the engine's task queue; a run still going at the next 02:00 makes that one skipped, never doubled
(docs/adr/0026-reconciliation-schedule.md).
"""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from schemas.reconcile import (
    RECONCILE_CRON,
    RECONCILE_SCHEDULE_ID,
    RECONCILE_WORKFLOW_ID_PREFIX,
    RECONCILE_WORKFLOW_TYPE,
    ReconcileInput,
)
from workflows.options import RECONCILE


def reconcile_schedule(task_queue: str) -> Schedule:
    """The nightly reconciliation: every night at 02:00 UTC, overlap SKIP, default input (5 minutes' settle)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW_TYPE,
            ReconcileInput(),
            id=f"{RECONCILE_WORKFLOW_ID_PREFIX}-nightly",  # the schedule appends the scheduled instant
            task_queue=task_queue,
            # A run that cannot finish by the next night is stopped and reported as timed out.
            execution_timeout=RECONCILE["schedule_to_close_timeout"] * 3,
        ),
        spec=ScheduleSpec(cron_expressions=[RECONCILE_CRON], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconcile_schedule(client: Client, task_queue: str) -> str:
    """Create the schedule, or bring an existing one to this definition; return "created" or "updated"."""
    wanted = reconcile_schedule(task_queue)
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # The whole definition is ours; whether someone paused it (state) is kept.
        return ScheduleUpdate(schedule=Schedule(action=wanted.action, spec=wanted.spec, policy=wanted.policy,
                                                state=current.description.schedule.state))  # fmt: skip

    await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).update(replace)
    return "updated"
