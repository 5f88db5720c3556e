"""SUBMITTED: what a run of the Exchange workflow checks before it touches anything.

One exchange per application id, forever: a run claims its application id in Postgres before its first
projection; another run under the same id (an SDK's default id-reuse policy allows one once the first
has closed) finds the claim and ends at once with `DuplicateApplication`, touching nothing.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.ids import ApplicationId


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClaimExchangeRunInput(_Message):
    application_id: ApplicationId
    workflow_id: str
    run_id: str = Field(
        description="the chain's first run id: a reset run keeps it, so a reset is the same exchange, "
        "while a new start under a closed exchange's id is not"
    )
    started_at: datetime


class ClaimExchangeRunResult(_Message):
    claimed: bool = Field(description="true when this run (or its chain) owns the application id")
    owner_run_id: str
    claimed_at: datetime
