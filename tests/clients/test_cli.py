"""The `cx` command as a subprocess: helpful --help, one-line errors with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import application

CX = [sys.executable, "-m", "workers.cli"]
ROOT = Path(__file__).resolve().parents[2]


def cx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    environment |= {"CX_STATE_DIR": str(ROOT / ".cx-test-absent"), "COLUMNS": "200"} | (env or {})
    return subprocess.run([*CX, *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)


@pytest.mark.parametrize("command", [["--help"], ["submit", "--help"], ["status", "--help"], ["dev", "up", "--help"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    """--help exits 0 and shows an example line."""
    result = cx(*command)
    assert result.returncode == 0, result.stderr
    if command != ["--help"]:
        assert "Example:" in result.stdout


def test_submit_refuses_a_missing_file_in_one_line(tmp_path: Path) -> None:
    """A missing file is one error line naming it, exit 2 (USAGE)."""
    result = cx("submit", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nope.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_submit_refuses_bad_json_and_bad_fields_before_contacting_anything(tmp_path: Path) -> None:
    """Malformed JSON and an invalid field are refused with the field named, even with no server running."""
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = cx("submit", str(broken))
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr

    data = application().model_dump(mode="json")
    data["host"]["country"] = "France"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = cx("submit", str(bad))
    assert result.returncode == 2
    assert "host.country" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_without_a_stack_say_how_to_get_one() -> None:
    """With no DATABASE_URL / TEMPORAL_ADDRESS and no `make run`, the error says what to set; exit 5 (UNAVAILABLE)."""
    result = cx("status", "app-1")
    assert result.returncode == 5
    assert "TEMPORAL_ADDRESS" in result.stderr
    assert "Traceback" not in result.stderr
