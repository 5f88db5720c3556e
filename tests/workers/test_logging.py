"""Logs are JSON off a terminal, with the workflow and exchange ids the Temporal SDK attaches lifted to the top."""

from __future__ import annotations

import json
import logging

import pytest

from workers.logging import configure_logging, get_logger


def test_json_lines_carry_workflow_and_exchange_ids(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib record with the SDK's temporal_workflow extra renders as JSON with workflow_id and exchange_id."""
    configure_logging("json")
    logging.getLogger("temporalio.workflow").info(
        "stage REVIEW",
        extra={"temporal_workflow": {"workflow_id": "exchange:app-1", "workflow_type": "Exchange", "run_id": "r1"}},
    )
    get_logger("cx.test").info("hello", exchange_id="app-2")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["workflow_id"] == "exchange:app-1"
    assert lines[0]["exchange_id"] == "app-1"
    assert lines[0]["event"] == "stage REVIEW"
    assert lines[1] == lines[1] | {"event": "hello", "exchange_id": "app-2", "level": "info"}


def test_console_format_is_readable_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal format the same record is a readable line, not JSON."""
    configure_logging("console")
    get_logger("cx.test").info("hello", exchange_id="app-3")
    err = capsys.readouterr().err
    assert "hello" in err
    assert "exchange_id" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip().splitlines()[-1])
