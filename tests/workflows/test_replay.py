"""Every recorded history in tests/histories/ replays against today's workflow code without non-determinism."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from tests.workflows.histories import HISTORIES_DIR, replayer

HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))


# The v1 baseline (docs/adr/0013-v1-baseline.md): one recorded history per path through the lifecycle.
V1_PATHS = {
    "exchange_paid",
    "exchange_paid_after_ignored_confirmations",
    "exchange_report_returned_paid_late",
    "exchange_ineligible",
    "exchange_rejected_reopened",
    "exchange_expired",
    "exchange_lapsed",
    "exchange_withdrawn",
    "exchange_cancelled",
    "exchange_no_show",
    "exchange_forfeited",
    "exchange_amended",
    "exchange_reassigned",
    "exchange_dates_amended",
    "exchange_waitlisted_funded_cancelled",
    "funds_fifo",
}


def test_every_path_of_the_lifecycle_has_a_recorded_history() -> None:
    """The replay suite is not vacuous: each terminal stage and each detour (waitlist, amendment, appeal,
    reassignment, new dates) has a recorded history that must keep replaying."""
    assert {p.stem for p in HISTORY_FILES} >= V1_PATHS, V1_PATHS - {p.stem for p in HISTORY_FILES}


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
