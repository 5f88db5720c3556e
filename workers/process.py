"""One `cx` run's configuration: the one Settings, read once, and what each kind of command gets of it.

The entry point (workers/cli.py) puts a `Process` in the typer context of every command. Process commands
(workers/commands.py) take the Settings with `settings_of(ctx)`; client commands take a `ClientConfig`
(clients/config.py) through `client_config(ctx)`, which asks the `Process` for it. The environment is read on
first use, so that `--help` and input refused before anything is contacted never depend on it, and at most
once per run (docs/adr/0014-one-way-imports.md; tests/test_architecture.py checks that this is the only read).
"""

from __future__ import annotations

import typer
from temporalio.client import Client

from clients.command import fail
from clients.config import ClientConfig, ConfigSource
from clients.exit_codes import ExitCode
from workers.connect import connect_temporal
from workers.evidence_store import open_evidence_store
from workers.runtime import resolve_database_url, resolve_temporal_connection
from workers.settings import Settings, SettingsError


class Process(ConfigSource):
    """The configuration of one run of `cx`: Settings read from the environment on first use, then kept."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The process's Settings (raises SettingsError naming a malformed variable)."""
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def client_config(self) -> ClientConfig:
        settings = self.settings

        async def temporal_client() -> Client:
            # One attempt (a command does not wait for a server), on the process's one runtime (workers/connect.py).
            return await connect_temporal(resolve_temporal_connection(settings), timeout_s=0)

        return ClientConfig(
            temporal_namespace=settings.temporal_namespace,
            task_queue=settings.task_queue,
            evidence_store=lambda: open_evidence_store(settings),
            database_url=lambda: resolve_database_url(settings),
            temporal_client=temporal_client,
        )


def settings_of(ctx: typer.Context) -> Settings:
    """The run's Settings for a process command, or a usage error naming the variable that is wrong."""
    process = ctx.find_object(Process)
    if process is None:
        process = Process()
        ctx.find_root().obj = process
    try:
        return process.settings
    except SettingsError as error:
        raise fail(str(error), ExitCode.USAGE) from None
