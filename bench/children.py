"""The benchmarks' child processes: started with their own log, tied to the benchmark's life, stopped or killed.

Shared by bench/lifecycle.py and bench/scaleout.py. Every child is told by the kernel to end when the
benchmark ends (PR_SET_PDEATHSIG), so a benchmark killed with -9 leaves no worker behind; an orderly stop
sends SIGTERM and waits, then SIGKILL. The Temporal dev server is started the SDK's way, on a free port.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from schemas.converter import DATA_CONVERTER
from schemas.search import SEARCH_ATTRIBUTES
from workers.devstack import TEMPORAL_CLI, free_port

CHILD_START_LIMIT_S = 90.0
STOP_LIMIT_S = 30.0
REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
# Loaded before any thread exists: the forked child only calls it (see workers/devstack.py).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: end with the benchmark, even if it is killed."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass
class ChildWorker:
    """A process of our own (a worker, a dispatcher, an API): its pid, its log, and how to stop it."""

    name: str
    task_queue: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_address: str

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not drained within STOP_LIMIT_S; reaped either way."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)

    def kill(self) -> None:
        """kill -9: no draining, no goodbye to the servers (a crashed machine); reaped."""
        self.process.kill()
        self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_child(name: str, argv: list[str], env: dict[str, str], log_dir: Path, metrics_address: str) -> ChildWorker:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    task_queue = env.get("CX_TASK_QUEUE", "")
    return ChildWorker(name, task_queue, process, log_path, metrics_address)


async def wait_for_poller(client: Client, child: ChildWorker, task_queue: str) -> None:
    """A worker is ready when the server sees it (its pid, the SDK's default identity `<pid>@<host>`) polling."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + CHILD_START_LIMIT_S
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited at start-up; see {child.log_path}:\n{child.log_tail()}")
        pollers = (await client.workflow_service.describe_task_queue(request)).pollers
        if any(p.identity.startswith(f"{child.pid}@") for p in pollers):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"{child.name} did not poll {task_queue} within {CHILD_START_LIMIT_S:.0f} s; see {child.log_path}"
    )


async def start_dev_server(attempts: int = 3) -> tuple[WorkflowEnvironment, int]:
    """The dev server on a free port; on a shared machine another process may take the port first: try again."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        try:
            env = await WorkflowEnvironment.start_local(
                data_converter=DATA_CONVERTER,
                dev_server_existing_path=str(TEMPORAL_CLI),
                port=port,
                ui=False,
                search_attributes=SEARCH_ATTRIBUTES,
                dev_server_log_level="error",
            )
        except RuntimeError:
            if attempt == attempts:
                raise
            progress(f"the dev server did not start on port {port} (taken meanwhile?); trying another")
            continue
        return env, port
    raise AssertionError("unreachable: the last attempt returns or raises")


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
