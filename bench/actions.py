"""Billable Temporal Cloud actions counted from workflow histories (issue 12), with a breakdown by kind and name.

The rule follows Temporal Cloud's published list of actions (docs.temporal.io/cloud/actions, "Temporal
Cloud Actions"), read event by event from a run's history:

| kind | history | actions |
|---|---|---|
| start | WorkflowExecutionStarted | 1 (0 for a run continued as new or a child: counted where it was asked for) |
| activity | ActivityTaskScheduled | 1 per attempt: 1, plus `attempt - 1` from its ActivityTaskStarted |
| marker task | MarkerRecorded | 1 per workflow task that recorded markers, however many (local activities, patches) |
| local activity retry | WorkflowTaskCompleted | `metering_metadata.nonfirst_local_activity_execution_attempts` |
| timer | TimerStarted | 1 (also the implicit timers of `wait_condition(timeout=...)`, even when cancelled) |
| signal | WorkflowExecutionSignaled | 1 (0 when it is event 2 of a signal-with-start: one action for both) |
| update | WorkflowExecutionUpdateAccepted | 1 |
| search-attribute upsert | UpsertWorkflowSearchAttributes | 1 (0 when it sets only TemporalChangeVersion) |
| continue-as-new | WorkflowExecutionContinuedAsNew | 1 |
| child workflow | StartChildWorkflowExecutionInitiated | 2 (the intent and the start) |
| options updated | WorkflowExecutionOptionsUpdated | 1 |
| nexus | NexusOperationScheduled, NexusOperationCancelRequested | 1 |
| reset | WorkflowTaskFailed, cause RESET_WORKFLOW | 1 |

What a history cannot show is added from the caller's own counts (`DriverCounts`): every update a
worker rejected in its validator (billed, never written to history) and every query (billed when a
worker answers it; never in history). A signal sent to another workflow is counted in the signalled
workflow's history, as the Cloud UI does. Workflow tasks, activity completions and heartbeats of
activities that never heartbeat cost nothing.

Markers: the Cloud page bills "all RecordMarkers from each Workflow Task as one action" under local
activities, and older versions of it listed version markers (`patched`) as billed. So a workflow task
that recorded only patch markers is counted too: `patch_only_marker_tasks` says how many of the marker
tasks were that, should the lead want the lower bound.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent

START = "start"
ACTIVITY = "activity attempt"
MARKER_TASK = "marker task"
LOCAL_ACTIVITY_RETRY = "local activity retry"
TIMER = "timer"
SIGNAL = "signal"
UPDATE = "update accepted"
UPDATE_REJECTED = "update rejected"
QUERY = "query"
UPSERT = "search-attribute upsert"
CONTINUE_AS_NEW = "continue-as-new"
CHILD_WORKFLOW = "child workflow"
OPTIONS_UPDATED = "options updated"
NEXUS = "nexus operation"
RESET = "reset"
KINDS = (
    START,
    ACTIVITY,
    MARKER_TASK,
    LOCAL_ACTIVITY_RETRY,
    TIMER,
    SIGNAL,
    UPDATE,
    UPDATE_REJECTED,
    QUERY,
    UPSERT,
    CONTINUE_AS_NEW,
    CHILD_WORKFLOW,
    OPTIONS_UPDATED,
    NEXUS,
    RESET,
)

LOCAL_ACTIVITY_MARKER = "core_local_activity"
PATCH_MARKER = "core_patch"
CHANGE_VERSION_ATTRIBUTE = "TemporalChangeVersion"  # exempt from upsert actions

_E = EventType


@dataclass
class ActionCount:
    """Billable actions of one or more workflow runs: the total, by kind, and what they were spent on."""

    by_kind: Counter[str] = field(default_factory=Counter)
    by_activity: Counter[str] = field(default_factory=Counter)  # attempts per activity type
    local_activities: Counter[str] = field(default_factory=Counter)  # executions per type (in marker tasks)
    updates: Counter[str] = field(default_factory=Counter)  # accepted updates per name
    signals: Counter[str] = field(default_factory=Counter)  # billed signals per name
    patch_only_marker_tasks: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def with_driver(self, driver: DriverCounts) -> ActionCount:
        """These actions plus what only the driver knows: rejected updates and queries."""
        by_kind = self.by_kind + Counter({UPDATE_REJECTED: driver.updates_rejected, QUERY: driver.queries_sent})
        return ActionCount(
            by_kind=by_kind,
            by_activity=self.by_activity,
            local_activities=self.local_activities,
            updates=self.updates,
            signals=self.signals,
            patch_only_marker_tasks=self.patch_only_marker_tasks,
            runs=self.runs,
        )

    def __add__(self, other: ActionCount) -> ActionCount:
        return ActionCount(
            by_kind=self.by_kind + other.by_kind,
            by_activity=self.by_activity + other.by_activity,
            local_activities=self.local_activities + other.local_activities,
            updates=self.updates + other.updates,
            signals=self.signals + other.signals,
            patch_only_marker_tasks=self.patch_only_marker_tasks + other.patch_only_marker_tasks,
            runs=self.runs + other.runs,
        )


@dataclass(frozen=True)
class DriverCounts:
    """What the caller sent that histories do not show (or show only in part)."""

    updates_sent: int = 0
    updates_rejected: int = 0  # refused by a validator: billed, absent from history
    signals_sent: int = 0
    queries_sent: int = 0  # each one a worker answered is billed

    def __add__(self, other: DriverCounts) -> DriverCounts:
        return DriverCounts(
            updates_sent=self.updates_sent + other.updates_sent,
            updates_rejected=self.updates_rejected + other.updates_rejected,
            signals_sent=self.signals_sent + other.signals_sent,
            queries_sent=self.queries_sent + other.queries_sent,
        )


def count_actions(events: Iterable[HistoryEvent], driver: DriverCounts | None = None) -> ActionCount:
    """The billable actions of one run's history, plus the driver's rejected updates and queries."""
    count = ActionCount(runs=1)
    kinds = count.by_kind
    activity_types: dict[int, str] = {}
    marker_tasks: dict[int, set[str]] = {}  # workflow task completed event id -> marker names
    first_event_type: int | None = None
    for event in events:
        kind = event.event_type
        if first_event_type is None:
            first_event_type = kind
        if kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            continued = bool(started.continued_execution_run_id)
            child = started.HasField("parent_workflow_execution")
            kinds[START] += 0 if continued or child else 1
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            activity_types[event.event_id] = name
            kinds[ACTIVITY] += 1
            count.by_activity[name] += 1
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempt_started = event.activity_task_started_event_attributes
            retries = max(0, attempt_started.attempt - 1)
            if retries:
                kinds[ACTIVITY] += retries
                count.by_activity[activity_types.get(attempt_started.scheduled_event_id, "?")] += retries
        elif kind == _E.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            marker_tasks.setdefault(marker.workflow_task_completed_event_id, set()).add(marker.marker_name)
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                count.local_activities[_local_activity_type(event)] += 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            metering = event.workflow_task_completed_event_attributes.metering_metadata
            kinds[LOCAL_ACTIVITY_RETRY] += metering.nonfirst_local_activity_execution_attempts
        elif kind == _E.EVENT_TYPE_TIMER_STARTED:
            kinds[TIMER] += 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal_with_start = event.event_id == 2 and first_event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
            if not signal_with_start:
                kinds[SIGNAL] += 1
                count.signals[event.workflow_execution_signaled_event_attributes.signal_name] += 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            kinds[UPDATE] += 1
            name = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            count.updates[name] += 1
        elif kind == _E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            kinds[UPSERT] += 0 if set(fields) == {CHANGE_VERSION_ATTRIBUTE} else 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            kinds[CONTINUE_AS_NEW] += 1
        elif kind == _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            kinds[CHILD_WORKFLOW] += 2
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
            kinds[OPTIONS_UPDATED] += 1
        elif kind in (_E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED, _E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED):
            kinds[NEXUS] += 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            cause = event.workflow_task_failed_event_attributes.cause
            kinds[RESET] += 1 if cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW else 0
    kinds[MARKER_TASK] += len(marker_tasks)
    count.patch_only_marker_tasks = sum(1 for names in marker_tasks.values() if names == {PATCH_MARKER})
    count.by_kind = +kinds  # drop the kinds that stayed at zero
    return count if driver is None else count.with_driver(driver)


def _local_activity_type(event: HistoryEvent) -> str:
    """The activity type a local-activity marker records (its `data` payload is JSON written by the SDK core)."""
    data = event.marker_recorded_event_attributes.details.get("data")
    if data is None or not data.payloads:
        return "?"
    try:
        decoded = json.loads(data.payloads[0].data)
    except ValueError:
        return "?"
    name = decoded.get("activity_type") if isinstance(decoded, dict) else None
    return name if isinstance(name, str) else "?"
