"""Log lines that concern an exchange name it; every API request writes one access line and is counted.

- an activity's lines carry `exchange_id` and `activity` whatever logger writes them (the worker's
  ExchangeLogContext interceptor, workers/log_context.py), on the dev server with a real worker;
- an API route's lines carry `exchange_id` and the request id (clients/api/access_log.py);
- the access line: method, route template, status, duration_ms, principal subject (never the token),
  request id (the caller's X-Request-ID when sane, returned), exchange_id; and cx_http_requests_total.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from clients.api import create_app
from clients.client import ExchangeClient
from tests.api.helpers import OFFICER, auth, body, officer_of, token_table
from tests.waiting import within
from tests.workflows.conftest import add_review_panel
from tests.workflows.conftest import dev_client as dev_client  # the fixture: a worker on the dev server
from workers.log_context import ExchangeLogContext
from workers.logging import configure_logging


@activity.defn(name="log_for_test")
async def log_for_test(note: str) -> None:
    # A plain stdlib logger and a structlog one, as the ledger or a library would log: neither knows the exchange.
    logging.getLogger("ledger.test").info("stdlib line %s", note)
    structlog.stdlib.get_logger("cx.test").info("structlog line", note=note)


@workflow.defn(name="LogForTest")
class LogForTest:
    @workflow.run
    async def run(self, note: str) -> None:
        await workflow.execute_activity(log_for_test, note, start_to_close_timeout=timedelta(seconds=10))


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


async def test_every_line_of_an_activity_names_its_exchange(
    dev_server_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines an activity writes through any logger carry exchange_id (the application id) and the activity."""
    configure_logging("json")
    task_queue = f"cx-logs-{uuid.uuid4().hex[:8]}"
    application_id = f"app-log-{uuid.uuid4().hex[:6]}"
    async with Worker(
        dev_server_env.client,
        task_queue=task_queue,
        workflows=[LogForTest],
        activities=[log_for_test],
        interceptors=[ExchangeLogContext()],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        await within(
            dev_server_env.client.execute_workflow(
                LogForTest.run, "n1", id=f"exchange:{application_id}", task_queue=task_queue
            ),
            "the logging workflow's result",
        )
    lines = [
        line for line in _lines(capsys.readouterr().err) if line.get("event") in {"stdlib line n1", "structlog line"}
    ]
    assert len(lines) == 2, lines
    for line in lines:
        assert line["exchange_id"] == application_id
        assert line["workflow_id"] == f"exchange:{application_id}"
        assert line["activity"] == "log_for_test"
    # Nothing stays bound once the activity has ended.
    assert structlog.contextvars.get_contextvars() == {}


async def test_access_lines_and_route_lines_name_the_request_and_the_exchange(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    """One access line per request (with X-Request-ID echoed, the token never logged), the route's own line
    with exchange_id, and the request counted by route template."""
    configure_logging("json")
    partnership = f"p-logs-{uuid.uuid4().hex[:8]}"
    await add_review_panel(pg_pool, partnership)
    app = create_app(dev_client, pg_pool, token_table(partnership))
    application = body(
        partnership, host_agency_approved=True, host_agency_approval_reference="HA-1"
    )  # an officer field: the route logs a line
    application_id = application["application_id"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        started = await http.post("/exchanges", json=application, headers={**auth(OFFICER), "X-Request-ID": "req-1"})
        assert started.status_code == 201, started.text
        assert started.headers["X-Request-ID"] == "req-1"
        read = await http.get(f"/exchanges/{application_id}", headers={**auth(OFFICER), "X-Request-ID": "bad id"})
        assert read.status_code == 200, read.text
        refused = await http.get("/exchanges")
        assert refused.status_code == 401
        await http.post(
            f"/exchanges/{application_id}/updates/cancel",
            json={"actor_id": officer_of(partnership), "reason": "logs test finished"},
            headers=auth(OFFICER),
        )
        exposition = (await http.get("/metrics")).text
    err = capsys.readouterr().err
    assert OFFICER not in err, "a bearer token was logged"
    lines = _lines(err)
    route_line = next(line for line in lines if line.get("event") == "officer fields set at start")
    assert route_line["exchange_id"] == application_id
    assert route_line["request_id"] == "req-1"
    access = [line for line in lines if line.get("event") == "http request"]
    start, get, unauthorised = access[0], access[1], access[2]
    assert start == start | {
        "method": "POST",
        "route": "/exchanges",
        "status": 201,
        "principal": officer_of(partnership),
        "request_id": "req-1",
        "exchange_id": application_id,
    }
    assert isinstance(start["duration_ms"], float)
    assert get["route"] == "/exchanges/{application_id}"
    assert get["exchange_id"] == application_id
    # A request id with a space is not echoed into logs: a fresh one replaces it, and is returned.
    assert get["request_id"] != "bad id"
    assert read.headers["X-Request-ID"] == get["request_id"]
    assert unauthorised["status"] == 401
    assert unauthorised["principal"] is None
    assert "exchange_id" not in unauthorised
    counted = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "cx_http_requests_total"
    }
    assert counted[(("method", "GET"), ("route", "/exchanges/{application_id}"), ("status", "200"))] == 1
    assert counted[(("method", "POST"), ("route", "/exchanges"), ("status", "201"))] == 1


async def test_route_labels_are_templates_never_raw_paths(dev_client: ExchangeClient, pg_pool: asyncpg.Pool) -> None:
    """Static files count under their mount's `/{path}`, a refused unknown path as `<unmatched>`: label values
    stay few whatever callers ask for."""
    app = create_app(dev_client, pg_pool, {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        assert (await http.get("/static/swagger-ui/swagger-ui.css")).status_code == 200
        assert (await http.get("/no/such/thing-123")).status_code == 401
        exposition = (await http.get("/metrics")).text
    routes = {
        s.labels["route"]
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "cx_http_requests_total"
    }
    assert routes == {"/static/swagger-ui/{path}", "<unmatched>"}
