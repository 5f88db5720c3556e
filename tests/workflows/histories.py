"""Recorded workflow histories: replaying them proves workflow changes stay compatible with running exchanges.

Set CX_RECORD_HISTORIES=1 when running a test that calls `record` to (re)write its history file; do
it only when the workflow's shape changes on purpose, behind `workflow.patched`, and keep the old
files so they keep replaying.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer

from clients.client import ExchangeClient
from schemas.ids import exchange_workflow_id
from tests.payload_keys import TEST_DATA_CONVERTER
from workers.main import WORKFLOWS

HISTORIES_DIR = Path(__file__).parent.parent / "histories"


def replayer() -> Replayer:
    # With the codec: histories recorded before encryption are plaintext and pass through it unchanged.
    return Replayer(workflows=WORKFLOWS, data_converter=TEST_DATA_CONVERTER)


async def replay_and_maybe_record(handle: WorkflowHandle[object, object], name: str) -> None:
    """Replay this run's history against today's code; write it to tests/histories/ when asked."""
    history = await handle.fetch_history()
    await replayer().replay_workflow(history)
    if os.environ.get("CX_RECORD_HISTORIES") == "1":
        (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())


async def record(client: ExchangeClient, application_id: str, name: str) -> None:
    """Replay an exchange's history now, and record it as `name` when CX_RECORD_HISTORIES=1 (the v1 baseline
    keeps one history per path through the lifecycle: tests/workflows/test_replay.py lists them)."""
    await replay_and_maybe_record(client.temporal.get_workflow_handle(exchange_workflow_id(application_id)), name)
