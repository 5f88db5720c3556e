"""The state every stage of an exchange shares, and the few ways a stage touches the world.

`Exchange` holds the application, its policy, the stage, deadlines, money and the audit trail still to be
written. Recording an event costs nothing: it goes into a batch (`record`, `enter`), which the next
activity that writes to Postgres anyway carries into its own transaction (`take_batch`). The batch is
written on its own only when the workflow is about to wait for people and it holds something they must
see first (a stage entered, an assignment moved, a reminder or alert): `wait_until` does that, and keeps
the search attributes current, once per wait (docs/performance.md: why an event is not an activity).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deadlines import working_day_deadline
    from activities.projection import ProjectionActivities
    from schemas.errors import ErrorType, Refusal, refused
    from schemas.events import (
        NOTIFIED_EVENTS,
        AssignmentChange,
        ConfirmedPayment,
        DeadlineKey,
        EventName,
        ProjectedEvent,
        ProjectionBatch,
        WorkingDayDeadlineInput,
    )
    from schemas.exchange import ApplicationInput, RuleFailure, Transition
    from schemas.policy import Policy
    from schemas.review_state import AssignmentStatus
    from schemas.search import CX_GRANT_CENTS, CX_HOST_COUNTRY, CX_NEXT_DEADLINE, CX_PARTNERSHIP, CX_STAGE
    from schemas.stages import SYSTEM_ACTOR, Stage
    from workflows import options

__all__ = ["SYSTEM_ACTOR"]  # re-exported: the stages' modules take it from here


class Ended(Exception):
    """Raised inside the workflow to leave the lifecycle for a terminal stage."""

    def __init__(self, stage: Stage, reason: str, actor_id: str = SYSTEM_ACTOR, *, entered: bool = False) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.actor_id = actor_id
        self.entered = entered  # the stage was already entered (and recorded), e.g. REJECTED after its appeal


class Exchange:
    """One exchange's shared state; each stage module reads and changes it, and only through its methods."""

    def __init__(self, application: ApplicationInput) -> None:
        self.app = application
        self.policy_or_none: Policy | None = None
        self.stage = Stage.SUBMITTED
        self.sequence = 0
        self.history: list[Transition] = []
        self.deadlines: dict[DeadlineKey, datetime] = {}
        self.alerts: list[str] = []
        self.grant_cents: int | None = None
        self.hold_id: int | None = None
        self.held_cents = 0
        self.paid_cents = 0
        self.screening_failures: tuple[RuleFailure, ...] = ()
        self.stop: Ended | None = None
        self.closing = False
        # The stage an activity is entering right now (REVIEW at admission, AGREEMENT at funding): it writes the
        # new stage to the read model in its transaction, so people may act on it before the workflow has
        # mirrored it. Their messages are accepted and applied once the stage has settled (`settled`).
        self.entering: Stage | None = None
        self._events: list[ProjectedEvent] = []
        self._assignments: list[AssignmentChange] = []
        self._published: tuple[Stage, int | None, datetime | None] | None = None
        # Batches are written one at a time, in the order they were taken: an update handler's activity and
        # the main loop's never interleave (an assignment's status must not go back).
        self.write_lock = asyncio.Lock()

    # --- what the stages read -------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        assert self.policy_or_none is not None, "the policy is resolved when the application is admitted"
        return self.policy_or_none

    @property
    def application_id(self) -> str:
        return self.app.application_id

    def submitted_at(self) -> datetime:
        return self.app.submitted_at or workflow.info().start_time

    def next_deadline(self) -> datetime | None:
        upcoming = [d for d in self.deadlines.values() if d > workflow.now()]
        return min(upcoming) if upcoming else None

    @staticmethod
    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0, 0), tzinfo=UTC)

    # --- recording (no activity: a batch for the next write) ------------------------------------------

    def event(
        self, name: EventName, actor_id: str, reason: str = "", details: dict[str, object] | None = None
    ) -> ProjectedEvent:
        """The next audit event with the exchange's state as it is now (the sequence moves on)."""
        self.sequence += 1
        return ProjectedEvent(
            sequence=self.sequence,
            event=name,
            stage=self.stage,
            at=workflow.now(),
            actor_id=actor_id,
            reason=reason,
            details=details or {},
            grant_cents=self.grant_cents,
            held_cents=self.held_cents,
            paid_cents=self.paid_cents,
            next_deadline=self.next_deadline(),
            policy_version=self.policy_or_none.version if self.policy_or_none else None,
        )

    def record(
        self, name: EventName, actor_id: str, reason: str = "", details: dict[str, object] | None = None
    ) -> None:
        self._events.append(self.event(name, actor_id, reason, details))

    def enter(self, stage: Stage, actor_id: str, reason: str = "", details: dict[str, object] | None = None) -> None:
        """Enter `stage`: the deadlines of the stages left behind are dropped, the transition recorded."""
        self.move_to(stage, actor_id, reason, workflow.now())
        self.record(EventName.STAGE_ENTERED, actor_id, reason, details)

    def move_to(self, stage: Stage, actor_id: str, reason: str, at: datetime) -> None:
        self.stage = stage
        self.deadlines = {key: due for key, due in self.deadlines.items() if key.stage is stage}
        self.history.append(Transition(stage=stage, at=at, actor_id=actor_id, reason=reason))
        # The stage only: a reason is free text (a cancellation's, an officer's) and may name people; it is in
        # the audit trail, and logs carry no personal data (issue 16, tests/workflows/test_personal_data.py).
        workflow.logger.info("stage %s", stage.value, extra={"stage": stage.value})

    def alert(self, name: EventName, message: str) -> None:
        self.alerts.append(f"{name.value}: {message}")
        workflow.logger.warning("alert %s: %s", name.value, message)
        self.record(name, SYSTEM_ACTOR, message)

    def change_assignment(self, reviewer_id: str, status: AssignmentStatus, due_at: datetime | None = None) -> None:
        self._assignments.append(AssignmentChange(reviewer_id=reviewer_id, status=status, due_at=due_at))

    def adopt(self, written: tuple[ProjectedEvent, ...]) -> None:
        """Mirror events an activity wrote itself (its stage's own work): sequence, stage and history follow."""
        for event in written:
            assert event.sequence == self.sequence + 1, f"event {event.event} out of order: {event.sequence}"
            self.sequence = event.sequence
            if event.event is EventName.STAGE_ENTERED:
                self.move_to(event.stage, event.actor_id, event.reason, event.at)

    def take_batch(self, payment_confirmation: ConfirmedPayment | None = None) -> ProjectionBatch:
        """Everything recorded since the last write, for an activity to write in its own transaction."""
        batch = ProjectionBatch(
            application=self.app,
            events=tuple(self._events),
            assignments=tuple(self._assignments),
            payment_confirmation=payment_confirmation,
        )
        self._events, self._assignments = [], []
        return batch

    def _urgent(self) -> bool:
        """Something people must see before the workflow waits for them."""
        return bool(self._assignments) or any(
            e.event is EventName.STAGE_ENTERED or e.event in NOTIFIED_EVENTS for e in self._events
        )

    async def write(self) -> None:
        """Write the batch now (its own transaction): before a wait, or when the exchange closes."""
        async with self.write_lock:
            if not self._events and not self._assignments:
                return
            try:
                await workflow.execute_activity_method(
                    ProjectionActivities.record_events, self.take_batch(), **options.DATABASE
                )
            except ActivityError as error:
                # Postgres refused the batch even sanitised (activities/projection.py): a bug, alerted there.
                # The exchange's life and money must not stop on its read model: note it and go on.
                cause = error.cause
                if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.PROJECTION_REJECTED):
                    raise
                self.alerts.append(f"{EventName.PROJECTION_REJECTED.value}: {cause.message}")
                workflow.logger.error("projection rejected: %s", cause.message)

    # --- waiting ----------------------------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], deadline: datetime) -> bool:
        """Wait for `condition` until `deadline`; True if it held. A withdrawal or cancellation ends the wait.

        Before actually waiting, people's view is brought up to date: the batch is written if it holds
        something they must see, and the search attributes follow the stage and the next deadline.
        """
        remaining = deadline - workflow.now()
        if remaining > timedelta(0) and not (condition() or self.stop is not None):
            if self._urgent():
                await self.write()
            self.publish()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: condition() or self.stop is not None, timeout=remaining)
        self.raise_if_stopped()
        return condition()

    def raise_if_stopped(self) -> None:
        if self.stop is not None:
            raise self.stop

    def publish(self) -> None:
        """Ops' filters (stage, partnership, host country, grant, next deadline): upserted only on change."""
        next_deadline = self.next_deadline()
        published = (self.stage, self.grant_cents, next_deadline)
        if published == self._published:
            return
        self._published = published
        updates: list[SearchAttributeUpdate[Any]] = [
            CX_STAGE.value_set(self.stage.value),
            CX_PARTNERSHIP.value_set(self.app.visitor_partnership_id),
            CX_HOST_COUNTRY.value_set(self.app.host.country),
            CX_GRANT_CENTS.value_set(self.grant_cents)
            if self.grant_cents is not None
            else CX_GRANT_CENTS.value_unset(),
            CX_NEXT_DEADLINE.value_set(next_deadline) if next_deadline else CX_NEXT_DEADLINE.value_unset(),
        ]
        workflow.upsert_search_attributes(updates)

    async def working_day_deadline(self, working_days: int, start: datetime | None = None) -> datetime:
        """A deadline counted on the visitor's calendar (a local activity: the holidays tables stay out of the
        sandbox); the common ones are computed by the stage's own activity instead."""
        return await workflow.execute_local_activity(
            working_day_deadline,
            WorkingDayDeadlineInput(
                start=start or workflow.now(), working_days=working_days, country=self.app.visitor.country
            ),
            start_to_close_timeout=options.LOCAL_START_TO_CLOSE,
            retry_policy=options.COMPUTE_RETRY,
        )

    # --- what every validator asks ---------------------------------------------------------------------

    async def settled(self) -> None:
        """Wait until no activity is entering a stage (a message accepted early is then validated again)."""
        await workflow.wait_condition(lambda: self.entering is None)

    def require_stage(self, action: str, allowed: frozenset[Stage] | set[Stage]) -> None:
        if self.closing:
            raise refused(Refusal.WRONG_STAGE, f"{action}: the exchange is closing and accepts no more decisions")
        if self.stage not in allowed and self.entering not in allowed:
            names = ", ".join(sorted(s.value for s in allowed))
            raise refused(
                Refusal.WRONG_STAGE, f"{action}: not allowed in stage {self.stage.value} (allowed in: {names})"
            )

    def require_not_stopping(self) -> None:
        if self.stop is not None:
            raise refused(Refusal.WRONG_STAGE, f"the exchange is already being closed as {self.stop.stage.value}")
