"""Configuration read once from the environment and passed down (never read deep in the code)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schemas.ids import TASK_QUEUE


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about its surroundings.

    `database_url` and `temporal_address` are None when the embedded servers should be started.
    """

    database_url: str | None
    temporal_address: str | None
    temporal_namespace: str
    task_queue: str
    state_dir: Path
    log_format: str
    temporal_port: int | None
    temporal_ui_port: int | None
    postgres_port: int | None
    finance_webhook_url: str | None
    notify_email: str | None
    evidence_dir: Path
    metrics_address: str | None
    api_port: int | None
    # How long `cx worker`, `cx dispatcher` and `cx api` wait for Temporal and Postgres at start-up
    # (workers/connect.py) before they exit with UNAVAILABLE.
    connect_timeout_s: float
    # The REST API's bounds (issue 11): the largest JSON body it reads (evidence uploads have their own,
    # rules/evidence.py) and how long it waits for Temporal before answering 504.
    api_max_body_bytes: int = 1024 * 1024
    api_engine_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            temporal_address=env.get("TEMPORAL_ADDRESS") or None,
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", "default"),
            task_queue=env.get("CX_TASK_QUEUE", TASK_QUEUE),
            state_dir=Path(env.get("CX_STATE_DIR", ".cx")).resolve(),
            log_format=env.get("CX_LOG_FORMAT", "auto"),
            temporal_port=_optional_port(env, "CX_TEMPORAL_PORT"),
            temporal_ui_port=_optional_port(env, "CX_TEMPORAL_UI_PORT"),
            postgres_port=_optional_port(env, "CX_POSTGRES_PORT"),
            finance_webhook_url=env.get("CX_FINANCE_WEBHOOK_URL") or None,
            notify_email=env.get("CX_NOTIFY_EMAIL") or None,
            evidence_dir=Path(
                env.get("CX_EVIDENCE_DIR") or Path(env.get("CX_STATE_DIR", ".cx")) / "evidence"
            ).resolve(),
            metrics_address=env.get("CX_METRICS_ADDRESS") or None,
            api_port=_optional_port(env, "CX_API_PORT"),
            connect_timeout_s=_seconds(env, "CX_CONNECT_TIMEOUT_S", 120.0),
            api_max_body_bytes=_bytes(env, "CX_API_MAX_BODY_BYTES", 1024 * 1024),
            api_engine_timeout_s=_positive_seconds(env, "CX_API_ENGINE_TIMEOUT_S", 10.0),
        )


def _optional_port(env: dict[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: must be a TCP port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{name}={raw!r}: must be a TCP port number (1-65535)")
    return port


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # A limit on everything: a day covers any start-up; math.inf or NaN would never give up.
    if not 0 <= value <= 86_400:
        raise ValueError(f"{name}={raw!r}: must be a number of seconds from 0 to 86400")
    return value


def _positive_seconds(env: dict[str, str], name: str, default: float) -> float:
    value = _seconds(env, name, default)
    if value <= 0:
        raise ValueError(f"{name}={env.get(name)!r}: must be a number of seconds above 0")
    return value


def _bytes(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    # From 1 KiB (a request smaller than that is no request) to 16 MiB (a JSON body is a few KiB).
    if not raw.isdigit() or not 1024 <= int(raw) <= 16 * 1024 * 1024:
        raise ValueError(f"{name}={raw!r}: must be a number of bytes from 1024 to 16777216")
    return int(raw)
