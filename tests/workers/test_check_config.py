"""`cx worker|dispatcher|api --check-config`: a deployment's environment checked without connecting (issue 15).

Each run is a fresh process with exactly the variables given (no DATABASE_URL or TEMPORAL_ADDRESS of the
test session leaks in), pointing at hosts that do not exist: the check must not try to reach them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
CX = [sys.executable, "-m", "workers.cli"]
BASE = {
    "DATABASE_URL": "postgresql://cx:database-password@db.invalid:5432/cx",
    "TEMPORAL_ADDRESS": "temporal.invalid:7233",
    "TEMPORAL_NAMESPACE": "clusterxchange",
}
REVIEWER_TOKEN = "Rv7-Tq2mKx9LwZ4pNc1HsY8dBf5JgE0a"
TOKENS = json.dumps({REVIEWER_TOKEN: {"subject": "rita", "role": "reviewer"}})


def check(role: str, tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    # HOME and the state directory point into tmp_path: no profile file or `make run` of the machine is found.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CX_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run(
        [*CX, role, "--check-config"],
        cwd=ROOT,
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_complete_worker_environment_is_shown_without_its_secrets(tmp_path: Path) -> None:
    done = check(
        "worker",
        tmp_path,
        **BASE,
        CX_FINANCE_WEBHOOK_URL="https://finance.invalid/orders",
        TEMPORAL_API_KEY="the-api-key-value",
        CX_METRICS_ADDRESS="0.0.0.0:9464",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "cx worker: configuration complete"
    assert "postgresql://cx:***@db.invalid:5432/cx" in done.stdout
    assert "temporal.invalid:7233 namespace clusterxchange (TLS, API key)" in done.stdout
    assert "http://0.0.0.0:9464/metrics" in done.stdout
    assert "database-password" not in done.stdout
    assert "the-api-key-value" not in done.stdout


@pytest.mark.parametrize(
    ("role", "environ", "named"),
    [
        ("worker", {**BASE}, "CX_FINANCE_WEBHOOK_URL: required"),
        ("worker", {**BASE, "CX_FINANCE_WEBHOOK_URL": "finance:8080"}, "CX_FINANCE_WEBHOOK_URL='finance:8080'"),
        (
            "worker",
            {"DATABASE_URL": BASE["DATABASE_URL"], "CX_FINANCE_WEBHOOK_URL": "http://f.invalid/"},
            "TEMPORAL_ADDRESS is not set",
        ),
        (
            "worker",
            {**BASE, "CX_FINANCE_WEBHOOK_URL": "http://f.invalid/", "TEMPORAL_TLS": "yes"},
            "TEMPORAL_TLS='yes'",
        ),
        (
            "worker",
            {**BASE, "CX_FINANCE_WEBHOOK_URL": "http://f.invalid/", "CX_METRICS_ADDRESS": "9464"},
            "CX_METRICS_ADDRESS='9464'",
        ),
        ("dispatcher", {"DATABASE_URL": BASE["DATABASE_URL"]}, "CX_WEBHOOK_SECRET is not set"),
        (
            "dispatcher",
            {"DATABASE_URL": "mysql://db.invalid/cx", "CX_WEBHOOK_SECRET": "a-webhook-secret-value"},
            "DATABASE_URL='mysql://db.invalid/cx': must be a postgresql:// URL",
        ),
        ("api", {**BASE, "CX_API_TOKENS": "not json"}, "CX_API_TOKENS"),
        ("api", {"TEMPORAL_ADDRESS": BASE["TEMPORAL_ADDRESS"], "CX_API_TOKENS": TOKENS}, "DATABASE_URL is not set"),
    ],
)
def test_an_incomplete_environment_is_refused_naming_the_variable(
    role: str, environ: dict[str, str], named: str, tmp_path: Path
) -> None:
    done = check(role, tmp_path, **environ)
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert named in done.stderr
    assert done.stdout == ""


def test_the_dispatcher_and_the_api_each_check_their_own_part(tmp_path: Path) -> None:
    secret = {"CX_WEBHOOK_SECRET": "a-webhook-secret"}
    dispatcher = check("dispatcher", tmp_path, DATABASE_URL=BASE["DATABASE_URL"], **secret)
    assert dispatcher.returncode == 0, dispatcher.stderr
    assert "temporal" not in dispatcher.stdout  # the dispatcher needs Postgres only
    api = check("api", tmp_path, **BASE, CX_API_TOKENS=TOKENS)
    assert api.returncode == 0, api.stderr
    assert "tokens     1 from CX_API_TOKENS (reviewer)" in api.stdout
    assert REVIEWER_TOKEN not in api.stdout
