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
    """The phases of one run, split where the people driving it had to wait for the workflow.

    A message is sent at once after the previous one when no activity was scheduled between the previous
    one's answer and its arrival (a second review, the next signature); otherwise the sender waited for
    a stage and the message opens a new phase. A phase's activities and timers are those scheduled from
    the previous phase's first message until its own first message: they include the work the previous
    phase's update handlers did, which a bare run does in its main loop, before the sender's next wait.
    The activities after the last message make a last phase without messages. A signal that is event 2
    came with the start (signal-with-start) and is not a message to send.
    """
    phases: list[Phase] = []
    messages: list[Message] = []
    before = (0, 0)  # (activities, timers) of the phase being built, up to its first message
    since = [0, 0]  # (activities, timers) since that first message, or since the start
    answered = True  # the last message was answered (an update completed; a signal needs no answer)
    worked_since_answer = False  # an activity was scheduled after that answer: the sender had to wait
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            since[0] += 1
            worked_since_answer = worked_since_answer or answered
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            since[1] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            answered, worked_since_answer = True, False
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED or (
            kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and event.event_id != 2
        ):
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                name = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                message = Message(kind="update", name=name)
            else:
                message = Message(kind="signal", name=event.workflow_execution_signaled_event_attributes.signal_name)
            if not messages or worked_since_answer:  # the sender waited: a new phase starts with this message
                if messages:
                    phases.append(Phase(activities=before[0], timers=before[1], messages=tuple(messages)))
                before, since, messages = (since[0], since[1]), [0, 0], []
            messages.append(message)
            answered = message.kind == "signal"
            worked_since_answer = False
    if messages:
        phases.append(Phase(activities=before[0], timers=before[1], messages=tuple(messages)))
    phases.append(Phase(activities=since[0], timers=since[1], messages=()))
    return tuple(phases)
