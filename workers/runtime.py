"""Where the running stack is: DATABASE_URL / TEMPORAL_ADDRESS, or what `make run` wrote to .cx/.

`make run` starts embedded servers on free ports and records their addresses in
`<state_dir>/runtime.json` while it runs, so `cx` commands in another terminal find them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ledger.pool import ServerUnreachable
from schemas.converter import data_converter
from workers.payload_keys import install_person_keys, stack_payload_keys
from workers.settings import Settings
from workers.temporal_config import TemporalConnection, load_connection

RUNTIME_FILE = "runtime.json"


class StackNotFound(ServerUnreachable):
    """No server address configured and no running `make run` recorded one: no server to reach (UNAVAILABLE)."""


@dataclass(frozen=True)
class RuntimeInfo:
    database_url: str
    temporal_address: str
    temporal_ui_url: str | None
    pid: int


def write_runtime(settings: Settings, info: RuntimeInfo) -> Path:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / RUNTIME_FILE
    path.write_text(json.dumps(asdict(info), indent=2))
    return path


def clear_runtime(settings: Settings) -> None:
    (settings.state_dir / RUNTIME_FILE).unlink(missing_ok=True)


def read_runtime(settings: Settings) -> RuntimeInfo | None:
    path = settings.state_dir / RUNTIME_FILE
    if not path.exists():
        return None
    info = RuntimeInfo(**json.loads(path.read_text()))
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return None  # left behind by a run that was killed; its servers are gone too
    return info


def resolve_database_url(settings: Settings) -> str:
    """The database's address; also installs the person keyring every reader and writer of personal text needs
    (ledger/persons.py): whoever opens the database gets the keys that seal and open what it holds."""
    install_person_keys(settings)
    if settings.database_url:
        return settings.database_url
    info = read_runtime(settings)
    if info is None:
        raise StackNotFound(
            "DATABASE_URL is not set and no `make run` is running: set DATABASE_URL or start `make run`"
        )
    return info.database_url


def resolve_temporal_connection(settings: Settings) -> TemporalConnection:
    """The configured Temporal connection (workers/temporal_config.py), at the running `make run`'s address
    when neither TEMPORAL_ADDRESS nor a profile names one. Raises SettingsError for a malformed one."""
    connection = load_connection(settings)
    if connection.address is not None:
        return connection
    info = read_runtime(settings)
    if info is None:
        raise StackNotFound(
            "TEMPORAL_ADDRESS is not set and no `make run` is running: set TEMPORAL_ADDRESS or start `make run`"
        )
    # The stack's histories are encrypted with its own key unless CX_PAYLOAD_KEYS names one (workers/payload_keys.py).
    local = dataclasses.replace(connection, data_converter=data_converter(stack_payload_keys(settings)))
    return local.at(info.temporal_address)
