"""The benchmark's count of billed actions (bench/actions.py) and the bare plan read from histories (bench/plan.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench import actions
from bench.actions import DriverCounts, count_actions
from bench.plan import plan_from_history

PAID_HISTORY = Path(__file__).parent.parent / "histories" / "exchange_paid.json"


@pytest.fixture(scope="module")
def raw_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(PAID_HISTORY.read_text())["events"]
    return events


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["eventType"] == f"EVENT_TYPE_{kind}"]


def test_a_recorded_paid_exchange_is_counted_by_the_rule(raw_events: list[dict[str, Any]]) -> None:
    """Each kind in the recorded PAID history is what the rule says, recounted here from the raw JSON (so the
    test holds when the history is recorded again after the workflow changes)."""
    history = WorkflowHistory.from_json("exchange:recorded", PAID_HISTORY.read_text())
    counted = count_actions(history.events)

    retries = sum(
        max(0, int(e["activityTaskStartedEventAttributes"].get("attempt", 1)) - 1)
        for e in raw_events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"
    )
    upserts = [
        e
        for e in _of(raw_events, "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES")
        if set(e["upsertWorkflowSearchAttributesEventAttributes"]["searchAttributes"]["indexedFields"])
        != {"TemporalChangeVersion"}
    ]
    markers = _of(raw_events, "MARKER_RECORDED")
    marker_tasks = {e["markerRecordedEventAttributes"]["workflowTaskCompletedEventId"] for e in markers}
    expected = Counter(
        {
            actions.START: 1,
            actions.ACTIVITY: len(_of(raw_events, "ACTIVITY_TASK_SCHEDULED")) + retries,
            actions.TIMER: len(_of(raw_events, "TIMER_STARTED")),
            actions.UPDATE: len(_of(raw_events, "WORKFLOW_EXECUTION_UPDATE_ACCEPTED")),
            actions.SIGNAL: len(_of(raw_events, "WORKFLOW_EXECUTION_SIGNALED")),
            actions.UPSERT: len(upserts),
            actions.MARKER_TASK: len(marker_tasks),
        }
    )
    assert counted.by_kind == +expected
    assert counted.total == expected.total()
    assert sum(counted.by_activity.values()) == counted.by_kind[actions.ACTIVITY]
    assert counted.by_activity["record_transition"] == sum(
        1
        for e in _of(raw_events, "ACTIVITY_TASK_SCHEDULED")
        if e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "record_transition"
    )
    local = [e for e in markers if e["markerRecordedEventAttributes"]["markerName"] == "core_local_activity"]
    assert sum(counted.local_activities.values()) == len(local)
    assert "?" not in counted.local_activities  # each local activity's type is read from its marker
    assert sum(counted.updates.values()) == counted.by_kind[actions.UPDATE]
    assert counted.signals == Counter({"confirm_payment": 1})


def _event(event_id: int, kind: EventType.ValueType, **attributes: Any) -> HistoryEvent:
    return HistoryEvent(event_id=event_id, event_type=kind, **attributes)


def _marker(event_id: int, task: int, name: str, data: dict[str, Any]) -> HistoryEvent:
    key = "data" if name == actions.LOCAL_ACTIVITY_MARKER else "patch-data"
    payloads = Payloads(payloads=[Payload(data=json.dumps(data).encode())])
    return _event(
        event_id,
        EventType.EVENT_TYPE_MARKER_RECORDED,
        marker_recorded_event_attributes={
            "marker_name": name,
            "workflow_task_completed_event_id": task,
            "details": {key: payloads},
        },
    )


def _upsert(event_id: int, *names: str) -> HistoryEvent:
    fields = {name: Payload(data=b'"x"') for name in names}
    return _event(
        event_id,
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        upsert_workflow_search_attributes_event_attributes={"search_attributes": {"indexed_fields": fields}},
    )


def test_each_rule_of_the_count_on_a_made_up_history() -> None:
    """Retried attempts, markers grouped by workflow task, local-activity retries, signal-with-start, the
    change-version upsert, continue-as-new, children, and the driver's rejected updates and queries."""
    e = EventType
    events = [
        _event(1, e.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        _event(
            2,
            e.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            workflow_execution_signaled_event_attributes={"signal_name": "with_start"},
        ),
        _event(
            5,
            e.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes={
                "metering_metadata": {"nonfirst_local_activity_execution_attempts": 2}
            },
        ),
        _event(
            6,
            e.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            activity_task_scheduled_event_attributes={"activity_type": {"name": "hold_funds"}},
        ),
        _event(
            7,
            e.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            activity_task_started_event_attributes={"scheduled_event_id": 6, "attempt": 3},
        ),
        _marker(8, 5, actions.LOCAL_ACTIVITY_MARKER, {"activity_type": "working_day_deadline"}),
        _marker(9, 5, actions.LOCAL_ACTIVITY_MARKER, {"activity_type": "working_day_deadline"}),
        _marker(10, 5, actions.PATCH_MARKER, {"id": "some-patch"}),
        _marker(11, 12, actions.PATCH_MARKER, {"id": "another-patch"}),
        _upsert(13, actions.CHANGE_VERSION_ATTRIBUTE),
        _upsert(14, "CxStage", "CxPartnership"),
        _event(15, e.EVENT_TYPE_TIMER_STARTED),
        _event(
            16,
            e.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            workflow_execution_signaled_event_attributes={"signal_name": "confirm_payment"},
        ),
        _event(
            17,
            e.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            workflow_execution_update_accepted_event_attributes={
                "accepted_request": {"input": {"name": "submit_review"}}
            },
        ),
        _event(18, e.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED),
        _event(19, e.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW),
    ]
    counted = count_actions(events, DriverCounts(updates_sent=3, updates_rejected=2, queries_sent=1))
    assert counted.by_kind == Counter(
        {
            actions.START: 1,  # the signal of a signal-with-start is part of its one action
            actions.ACTIVITY: 3,  # scheduled once, started at attempt 3: three attempts
            actions.MARKER_TASK: 2,  # three markers in task 5 count once; task 12 recorded a patch alone
            actions.LOCAL_ACTIVITY_RETRY: 2,
            actions.UPSERT: 1,  # setting only TemporalChangeVersion is exempt
            actions.TIMER: 1,
            actions.SIGNAL: 1,
            actions.UPDATE: 1,
            actions.UPDATE_REJECTED: 2,
            actions.QUERY: 1,
            actions.CHILD_WORKFLOW: 2,  # the intent and the start
            actions.CONTINUE_AS_NEW: 1,
        }
    )
    assert counted.total == 18
    assert counted.by_activity == Counter({"hold_funds": 3})
    assert counted.local_activities == Counter({"working_day_deadline": 2})
    assert counted.patch_only_marker_tasks == 1
    assert counted.signals == Counter({"confirm_payment": 1})


def test_a_run_continued_as_new_or_started_as_a_child_costs_no_second_start() -> None:
    """The start of a continued run or of a child was billed where it was asked for (continue-as-new, child)."""
    continued = _event(
        1,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        workflow_execution_started_event_attributes={"continued_execution_run_id": "previous-run"},
    )
    child = _event(
        1,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        workflow_execution_started_event_attributes={
            "parent_workflow_execution": {"workflow_id": "parent", "run_id": "r"}
        },
    )
    assert count_actions([continued]).total == 0
    assert count_actions([child]).total == 0
    both = count_actions([continued]) + count_actions([child])
    assert (both.runs, both.total) == (2, 0)


def test_the_bare_plan_of_a_paid_exchange_has_its_activities_messages_and_timers() -> None:
    """The bare baseline runs as many activities, updates, signals and timers as the history it was read from,
    in phases split where the sender waited for a stage; messages sent one after the other share a phase."""
    history = WorkflowHistory.from_json("exchange:recorded", PAID_HISTORY.read_text())
    counted = count_actions(history.events)
    phases = plan_from_history(history.events)
    assert sum(p.activities for p in phases) == sum(counted.by_activity.values())
    assert sum(p.timers for p in phases) == counted.by_kind[actions.TIMER]
    messages = [m for p in phases for m in p.messages]
    assert Counter(m.name for m in messages if m.kind == "update") == counted.updates
    assert [m.name for m in messages if m.kind == "signal"] == ["confirm_payment"]
    assert [sorted(set(m.name for m in p.messages)) for p in phases] == [
        ["submit_review"],  # the first reviewer, once the reviewers are assigned
        ["submit_review"],  # the second, after the first review's assignment change was written
        ["confirm_match", "sign_commitment"],  # the four signatures and both confirmations, in AGREEMENT
        ["submit_report", "validate_report"],  # in REPORTING
        ["confirm_payment"],  # once the payment order exists
        [],  # the closing activities after PAID
    ]
    assert all(p.activities > 0 for p in phases)
