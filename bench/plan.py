"""The shape of one exchange's run, read from its history, for the bare baseline (bench/bare.py).

Kept apart from the workflow module so that the bare workflow's sandbox passes it through, as the
exchange's passes schemas/ through: the bare run pays no more per run for its plan than an exchange
pays for its contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["update", "signal"]
    name: str  # the exchange's message this one stands for (for reading only)


class Phase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    activities: int
    timers: int
    messages: tuple[Message, ...]


class BarePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    phases: tuple[Phase, ...]
    notify_task_queue: str | None = None  # where the last activity before a phase's messages runs

    @property
    def activities(self) -> int:
        return sum(p.activities for p in self.phases)

    @property
    def timers(self) -> int:
        return sum(p.timers for p in self.phases)

    def messages(self, kind: Literal["update", "signal"]) -> int:
        return sum(1 for p in self.phases for m in p.messages if m.kind == kind)

    def describe(self) -> str:
        return (
            f"{len(self.phases)} phases, {self.activities} activities, {self.messages('update')} updates, "
            f"{self.messages('signal')} signals, {self.timers} timers"
        )


def plan_from_history(events: Iterable[HistoryEvent]) -> tuple[Phase, ...]:
    """The phases of one run: activities and timers until messages arrive, then the next phase.

    An activity or a timer after messages opens a new phase; messages with nothing between them share
    one. A signal that is event 2 came with the start (signal-with-start) and is not a message to send.
    """
    phases: list[Phase] = []
    activities = timers = 0
    messages: list[Message] = []
    for event in events:
        kind = event.event_type
        if kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_TIMER_STARTED):
            if messages:
                phases.append(Phase(activities=activities, timers=timers, messages=tuple(messages)))
                activities = timers = 0
                messages = []
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activities += 1
            else:
                timers += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            name = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            messages.append(Message(kind="update", name=name))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and event.event_id != 2:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            messages.append(Message(kind="signal", name=name))
    phases.append(Phase(activities=activities, timers=timers, messages=tuple(messages)))
    return tuple(phases)
