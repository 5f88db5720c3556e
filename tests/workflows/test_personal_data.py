"""Personal data leaves the engine's processes only encrypted (issue 16, item 1): a scan for planted strings.

An exchange is driven on the real dev server with a unique traveller's name, contact address and
organisation name planted in every kind of payload (the start input, review comments, signatures, a
cancellation's reason). Then what anyone with access to the Temporal server sees is scanned: the raw
history (as stored, and as `temporal workflow show` prints it without a codec), the search attributes and
memo, and every log line the worker wrote meanwhile. None holds a planted string; through the API's codec
server (`--codec-endpoint`) the same history reads in clear, so the scan is known to look in the right place.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from schemas.ids import exchange_workflow_id
from schemas.stages import Stage
from tests.codec_server import CODEC_REVIEWER, CodecEndpoint
from tests.factories import application
from tests.workflows.conftest import agree, assigned, review, wait_for_stage
from workers.devstack import TEMPORAL_CLI

CLI_TIMEOUT_S = 30


def planted_strings() -> tuple[str, str, str]:
    """A traveller's name, their contact address and their organisation's name, unique to this run."""
    tag = uuid.uuid4().hex[:8]
    return f"Zbigniew Qxv{tag}", f"z.qxv{tag}@contact.example", f"Qxv{tag} Photonics Sp. z o.o."


def readable(cli_json: str) -> str:
    """The CLI's JSON with every payload's data base64-decoded beside it: what a reader of the output can see."""
    found: list[str] = [cli_json]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and isinstance(node.get("metadata"), dict):
                found.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(cli_json))
    return "\n".join(found)


def show(env: WorkflowEnvironment, workflow_id: str, *codec: str) -> subprocess.CompletedProcess[str]:
    """`temporal workflow show --output json`, with the codec arguments given (or none: the raw history)."""
    address = env.client.service_client.config.target_host
    return subprocess.run(
        [str(TEMPORAL_CLI), "workflow", "show", "-w", workflow_id, "--address", address, "--output", "json", *codec],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def drive(client: ExchangeClient, partnership: str, traveller: str, contact: str, organisation: str) -> str:
    """Start, review, agree and cancel an exchange whose payloads carry the planted strings; its application id."""
    template = application()
    app = application(
        visitor_partnership_id=partnership,
        host_partnership_id=partnership,
        visitor=template.visitor.model_copy(update={"name": organisation}).model_dump(),
        goals=f"{traveller} (contact {contact}) learns how the host runs its clean-room.",
    )
    await client.start_exchange(app)
    status = await assigned(client, app.application_id)
    assert status.review is not None
    for assignment in status.review.assignments:
        comment = {"comment": f"{traveller} has a clear agenda; write to {contact}."}
        await client.submit_review(app.application_id, review(assignment.reviewer_id) | comment)
    await wait_for_stage(client, app.application_id, Stage.AGREEMENT)
    await agree(client, app.application_id)
    await wait_for_stage(client, app.application_id, Stage.TRAVEL)
    reason = f"{traveller} of {organisation} cannot travel; contact {contact}"
    await client.cancel(app.application_id, {"actor_id": "officer-olga", "reason": reason})
    await wait_for_stage(client, app.application_id, Stage.CANCELLED)
    return app.application_id


@pytest.mark.timeout(180)
async def test_no_planted_personal_data_in_history_search_attributes_or_logs(
    dev_server_env: WorkflowEnvironment,
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    funded_partnership: Callable[[int], Awaitable[str]],
    codec_endpoint: CodecEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The raw history, the search attributes and memo, and the worker's logs hold none of the planted strings;
    decoded through the codec server by an officer, the history shows all three; a reviewer is refused."""
    caplog.set_level(logging.DEBUG)
    planted = planted_strings()
    application_id = await drive(dev_client, await funded_partnership(500_000), *planted)
    workflow_id = exchange_workflow_id(application_id)
    handle = dev_client.temporal.get_workflow_handle(workflow_id)

    stored = b"".join(event.SerializeToString() for event in (await handle.fetch_history()).events)
    described = (await handle.describe()).raw_description.SerializeToString()
    raw = await asyncio.to_thread(show, dev_server_env, workflow_id)
    assert raw.returncode == 0, raw.stderr
    logs = [repr(record.__dict__) for record in caplog.records]
    assert any(workflow_id in line for line in logs), "the worker's log lines of this exchange were captured"
    for text in planted:
        assert text.encode() not in stored, f"{text!r} in the stored history"
        assert text.encode() not in described, f"{text!r} in the search attributes or memo"
        assert text not in readable(raw.stdout), f"{text!r} in `temporal workflow show`"
        assert not [line for line in logs if text in line], f"{text!r} in the worker's logs"
    assert b"binary/encrypted" in stored

    decoded = await asyncio.to_thread(show, dev_server_env, workflow_id, *codec_endpoint.cli_args())
    assert decoded.returncode == 0, decoded.stderr
    for text in planted:
        assert text in readable(decoded.stdout), f"{text!r}: the codec server decodes the history"
    [started] = json.loads(decoded.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    assert base64.b64decode(started["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(started["data"]))["goals"].startswith(planted[0])
    refused = await asyncio.to_thread(show, dev_server_env, workflow_id, *codec_endpoint.cli_args(CODEC_REVIEWER))
    assert planted[0] not in refused.stdout + refused.stderr
    assert refused.returncode != 0 or "403" in refused.stderr, "a reviewer may not decode"
