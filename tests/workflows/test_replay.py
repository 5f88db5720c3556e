"""Every recorded history in tests/histories/ replays against today's workflow code without non-determinism."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.workflows.histories import HISTORIES_DIR, replayer

HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))


def test_there_are_recorded_histories() -> None:
    """The replay suite is not vacuous: at least the happy path and a cancellation are recorded."""
    assert len(HISTORY_FILES) >= 2, HISTORY_FILES


@pytest.mark.parametrize("path", HISTORY_FILES, ids=[p.stem for p in HISTORY_FILES])
async def test_recorded_history_replays(path: Path) -> None:
    """A recorded exchange replays deterministically on the current code."""
    text = path.read_text()
    workflow_id = _workflow_id(text)
    result = await replayer().replay_workflow(WorkflowHistory.from_json(workflow_id, text))
    assert result.replay_failure is None


def _workflow_id(history_json: str) -> str:
    """The workflow id is not in the history events: rebuild it from the start input, as the contract names it
    (the workflow checks its own id since issue 10, so a placeholder would be refused on replay)."""
    first = json.loads(history_json)["events"][0]  # a corrupt file fails here, clearly
    attributes = first["workflowExecutionStartedEventAttributes"]
    payload = attributes["input"]["payloads"][0]
    start_input = json.loads(base64.b64decode(payload["data"]))
    if attributes["workflowType"]["name"] == "Funds":
        return f"funds:{start_input['partnership_id']}"
    return f"exchange:{start_input['application_id']}"
