"""Builders for test inputs: valid by default, each field overridable."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.projection import ProjectionActivities
from rules.calendar import working_days
from schemas.events import EventName, ProjectedEvent, ProjectionBatch
from schemas.exchange import ApplicationInput
from schemas.stages import Stage

# Real cities, far enough apart that the 200 km rule does not halve the grant.
KRAKOW = {"latitude": 50.0647, "longitude": 19.9450}
LYON = {"latitude": 45.7640, "longitude": 4.8357}
BRATISLAVA = {"latitude": 48.1486, "longitude": 17.1077}
VIENNA = {"latitude": 48.2082, "longitude": 16.3738}  # 55 km from Bratislava


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def full_week_ahead(weeks: int, country: str) -> tuple[date, date]:
    """A Monday-to-Friday stay at least `weeks` weeks from today with 5 working days in `country`."""
    monday = datetime.now(UTC).date() + timedelta(days=7 * weeks)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday += timedelta(days=7)
    return monday, monday + timedelta(days=4)


def application(**overrides: Any) -> ApplicationInput:
    start, end = full_week_ahead(3, "FR")
    data: dict[str, Any] = {
        "application_id": unique_id("app"),
        "visitor": {
            "organisation_id": unique_id("vo"),
            "name": "Krakow Photonics Cluster",
            "type": "cluster_organisation",
            "country": "PL",
            **KRAKOW,
        },
        "host": {
            "organisation_id": unique_id("ho"),
            "name": "Lyon Optics Hub",
            "type": "scale_up_support",
            "country": "FR",
            **LYON,
        },
        "visitor_partnership_id": "p-photonics",
        "host_partnership_id": "p-photonics",
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "goals": "Learn how the host runs its shared clean-room.",
        "submitted_by": "officer-anna",
    }
    data.update(overrides)
    return ApplicationInput.model_validate(data)


async def project(
    pool: asyncpg.Pool,
    app: ApplicationInput,
    stage: Stage,
    *,
    event: str = "stage_entered",
    sequence: int = 1,
    actor_id: str = "system",
    reason: str = "",
    details: dict[str, object] | None = None,
    at: datetime | None = None,
    **state: Any,
) -> None:
    """Write one audit event and the read model's row for `app`, as the workflow's batches do."""
    batch = ProjectionBatch(
        application=app,
        events=(
            ProjectedEvent(
                sequence=sequence,
                event=EventName(event),
                stage=stage,
                at=at or datetime.now(UTC),
                actor_id=actor_id,
                reason=reason,
                details=details or {},
                **state,
            ),
        ),
    )
    await ActivityEnvironment().run(ProjectionActivities(pool).record_events, batch)
