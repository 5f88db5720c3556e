"""Probes for orchestrators: `/healthz` (the process answers) and `/readyz` (Postgres and Temporal answer)."""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from datetime import timedelta

import asyncpg
from fastapi import APIRouter
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from clients.api import examples
from clients.api.context import Engine
from clients.api.models import Health
from clients.api.openapi import example_response
from clients.api.problems import ProblemError, problem_responses

READY_TIMEOUT_S = 2.0

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=Health,
    operation_id="getHealth",
    summary="The process answers (no token needed)",
    responses=example_response(examples.HEALTH, "the process is up"),
)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Health,
    operation_id="getReadiness",
    summary="Postgres and Temporal answer within 2 s each (no token needed)",
    responses={**example_response(examples.HEALTH, "ready to serve"), **problem_responses(503)},
)
async def readyz(api: Engine) -> Health:
    try:
        await api.pool.fetchval("SELECT 1", timeout=READY_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise ProblemError(503, "Not ready", f"postgres: {error}") from None
    try:
        await api.exchanges.temporal.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=READY_TIMEOUT_S)
        )
    except RPCError as error:
        raise ProblemError(503, "Not ready", f"temporal: {error.message}") from None
    return Health()
