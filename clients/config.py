"""What a client needs of the process's configuration, handed to it by the entry point.

Clients never read the environment and never import workers (docs/adr/0014-one-way-imports.md). The `cx`
entry point (workers/cli.py) reads the one Settings once per run and puts a `ConfigSource` in the
command's context; a client command asks it for a `ClientConfig` with `client_config(ctx)`: the values it
needs, and two doors that the entry point opens for it, the database's address (configured, or the one a
running `make run` recorded) and a Temporal client on the process's one runtime (workers/connect.py).
Both doors are opened only when a command uses them, so input is refused before any server is looked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from temporalio.client import Client

from ledger.evidence_store import EvidenceStore

# The REST API's bounds when nothing configures them (CX_API_MAX_BODY_BYTES, CX_API_ENGINE_TIMEOUT_S): a
# JSON body of an exchange is a few KiB; Temporal answers a healthy query in milliseconds.
DEFAULT_API_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_API_ENGINE_TIMEOUT_S = 10.0
# Where evidence goes when nothing says otherwise: Settings' `<CX_STATE_DIR>/evidence` with the default
# state directory, for an API app built without a store (a test that uploads nothing).
DEFAULT_EVIDENCE_DIR = Path(".cx") / "evidence"


@dataclass(frozen=True)
class ClientConfig:
    """The configuration of one client command (or of the REST API's app, built by its process)."""

    temporal_namespace: str
    task_queue: str
    # Where evidence files are stored and read (CX_EVIDENCE_STORE), built when a command first needs it.
    evidence_store: Callable[[], EvidenceStore]
    # The database's address: DATABASE_URL, or what a running `make run` recorded; raises
    # ledger.pool.ServerUnreachable (exit UNAVAILABLE) when there is neither.
    database_url: Callable[[], str]
    # A Temporal client on the process's runtime, after one attempt (a command does not wait for a server).
    temporal_client: Callable[[], Awaitable[Client]]


class ConfigSource:
    """What the entry point puts in a command's context: the one place a client's configuration comes from.

    A base class rather than an ABC, so that click can look it up by type in the context (`find_object`).
    """

    def client_config(self) -> ClientConfig:
        """The configuration, read on first use and then kept for the rest of the run."""
        raise NotImplementedError


# The entry point's source for commands mounted in an app of someone else's (a test's own typer app), whose
# context holds none: installed by workers/cli.py when it is imported.
_default_source: Callable[[], ConfigSource] | None = None


def install_default_source(make: Callable[[], ConfigSource]) -> None:
    """Name how a run without the `cx` entry point's context gets its configuration (workers/cli.py does)."""
    global _default_source
    _default_source = make


def client_config(ctx: typer.Context) -> ClientConfig:
    """The running command's configuration, from its context (or the installed default, kept on the root)."""
    source = ctx.find_object(ConfigSource)
    if source is None:
        if _default_source is None:
            raise RuntimeError("no configuration for this command: run it through `cx` (workers/cli.py)")
        source = _default_source()
        ctx.find_root().obj = source
    return source.client_config()
