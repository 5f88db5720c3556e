"""The one Settings (workers/settings.py): each variable read by name, refused in one line naming it, the same
whether read from the process environment or from a mapping (docs/adr/0014-one-way-imports.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clients.config import DEFAULT_API_ENGINE_TIMEOUT_S, DEFAULT_API_MAX_BODY_BYTES, DEFAULT_EVIDENCE_DIR
from workers.settings import Settings, SettingsError
from workers.versioning import Deployment

VARIABLES = {
    "DATABASE_URL": "postgresql://cx@db:5432/cx",
    "TEMPORAL_ADDRESS": "temporal:7233",
    "TEMPORAL_NAMESPACE": "clusterxchange",
    "CX_TASK_QUEUE": "cx-queue",
    "CX_STATE_DIR": "/srv/cx",
    "CX_LOG_FORMAT": "json",
    "CX_TEMPORAL_PORT": "7233",
    "CX_TEMPORAL_UI_PORT": "8233",
    "CX_POSTGRES_PORT": "5433",
    "CX_FINANCE_WEBHOOK_URL": "https://finance.example.org/orders",
    "CX_NOTIFY_EMAIL": "grants@example.org",
    "CX_EVIDENCE_DIR": "/srv/evidence",
    "CX_METRICS_ADDRESS": "0.0.0.0:9000",
    "CX_API_PORT": "8080",
    "CX_CONNECT_TIMEOUT_S": "30",
    "CX_API_MAX_BODY_BYTES": "2048",
    "CX_API_ENGINE_TIMEOUT_S": "2.5",
    "CX_API_TOKENS": '{"abcdefghijklmnopq": {"subject": "crm", "role": "service"}}',
    "CX_WEBHOOK_SECRET": "s3cret",
    "CX_SMTP_HOST": "smtp.internal",
    "CX_SMTP_PORT": "2525",
    "CX_SMTP_SENDER": "cx@example.org",
    "CX_WORKER_ACTIVITY_SLOTS": "50",
    "CX_WORKER_POOL_SIZE": "20",
    "CX_WORKER_CACHED_WORKFLOWS": "500",
    "CX_WORKER_DEPLOYMENT": "clusterxchange",
    "CX_BUILD_ID": "2026.12.2-a1b2c3d",
}


def forget_the_sessions_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the test session's own settings (its payload key, DATABASE_URL): only the test's variables count."""
    for name in list(os.environ):
        if name.startswith(("CX_", "TEMPORAL_", "OTEL_", "AWS_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def test_every_documented_variable_is_read_the_same_from_the_environment_and_from_a_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process's own read (pydantic-settings) and a mapping's give equal Settings, each field from its variable."""
    forget_the_sessions_variables(monkeypatch)
    for name, value in VARIABLES.items():
        monkeypatch.setenv(name, value)
    from_process = Settings.from_env()
    assert from_process == Settings.from_env(VARIABLES)
    assert (from_process.database_url, from_process.task_queue, from_process.smtp_port) == (
        VARIABLES["DATABASE_URL"],
        "cx-queue",
        2525,
    )
    assert from_process.evidence_dir == Path("/srv/evidence")
    assert from_process.deployment == Deployment("clusterxchange", "2026.12.2-a1b2c3d")
    assert (from_process.worker_activity_slots, from_process.worker_pool_size) == (50, 20)
    assert from_process.worker_cached_workflows == 500
    assert from_process.webhook_secret is not None
    assert from_process.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(from_process)
    assert "abcdefghijklmnopq" not in repr(from_process)


def test_unset_and_empty_variables_take_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable counts as unset; the defaults are the documented ones, and the API's are the clients'."""
    forget_the_sessions_variables(monkeypatch)
    for name in VARIABLES:
        monkeypatch.setenv(name, "")
    settings = Settings.from_env()
    assert settings == Settings.from_env({})
    assert (settings.database_url, settings.temporal_address, settings.temporal_namespace) == (None, None, "default")
    assert (settings.api_max_body_bytes, settings.api_engine_timeout_s) == (
        DEFAULT_API_MAX_BODY_BYTES,
        DEFAULT_API_ENGINE_TIMEOUT_S,
    )
    assert settings.evidence_dir == DEFAULT_EVIDENCE_DIR.resolve()
    assert settings.deployment is None  # an unversioned worker


@pytest.mark.parametrize("given", ["CX_WORKER_DEPLOYMENT", "CX_BUILD_ID"])
def test_a_deployment_needs_both_its_name_and_its_build_id(given: str) -> None:
    """One of the two alone would run a worker that no version routing can reach: refused, naming both."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({given: "x"})
    assert str(refused.value) == "CX_WORKER_DEPLOYMENT and CX_BUILD_ID: set both (a versioned worker) or neither"


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("CX_API_PORT", "http", "must be a TCP port number (1-65535)"),
        ("CX_SMTP_PORT", "0", "must be a TCP port number (1-65535)"),
        ("CX_CONNECT_TIMEOUT_S", "nan", "must be a number of seconds from 0 to 86400"),
        ("CX_API_ENGINE_TIMEOUT_S", "0", "must be a number of seconds above 0"),
        ("CX_API_MAX_BODY_BYTES", "1e9", "must be a number of bytes from 1024 to 16777216"),
    ],
)
def test_a_malformed_variable_is_refused_in_one_line_naming_it(name: str, value: str, rule: str) -> None:
    """SettingsError (a ValueError, so `cx` exits USAGE) reads `<VARIABLE>='<value>': <rule>`, on one line."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    assert str(refused.value) == f"{name}={value!r}: {rule}"
