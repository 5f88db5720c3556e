"""`cx`: the command line of the grant engine (back office, reviewers, ops, and the engine's processes).

The console script's entry point (pyproject `cx = "workers.cli:main"`), and the only place that composes
the two kinds of command (docs/adr/0014-one-way-imports.md):

- client commands (clients/cli.py and the clients/*_commands.py it mounts: submit, decide, status, ledger,
  reviewers, ...), which reach the engine through the contract and the database through the ledger;
- process commands (workers/commands.py: worker, dispatcher, api, dev up, temporal setup).

Every run gets one `Process` in its typer context (workers/process.py): the one Settings, read from the
environment on first use. After the command, and after its event loop has closed, the process's Temporal
runtime is released, which keeps short-lived commands from aborting at exit (workers/connect.py).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from clients import cli as client_commands
from clients.command import execute
from clients.config import install_default_source
from workers import commands as process_commands
from workers.connect import release_temporal_runtime
from workers.process import Process

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ClusterXchange grant engine.")


@app.callback()
def _configure(ctx: typer.Context) -> None:
    # Nothing is read here: the Process reads the environment when a command first asks for it.
    ctx.obj = Process()


process_commands.mount(app)
client_commands.mount(app)
# A client command mounted in another app (a test's) finds the same configuration without this callback.
install_default_source(Process)


def main() -> NoReturn:
    """Run `cx` and exit with its code; the Temporal runtime is released first, outside any exception."""
    code = execute(app)
    release_temporal_runtime()
    sys.exit(code)


if __name__ == "__main__":
    main()
