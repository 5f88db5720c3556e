"""`make run` stops on SIGTERM whatever is in flight (issue 11): a request hanging on the engine is cut off
after the API's grace period instead of keeping every server alive."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.factories import application
from workers.dev_up import SHUTDOWN_LIMIT_S
from workers.devstack import TEMPORAL_CLI, free_port

ROOT = Path(__file__).resolve().parents[2]
START_WITHIN_S = 120


def start_dev_stack(state_dir: Path, port: int, **environ: str) -> subprocess.Popen[str]:
    """`cx dev up --no-demo` on the embedded servers (as on a fresh machine), its API on `port`, JSON logs, output
    piped line by line; `environ` adds variables."""
    environment = {
        **os.environ,
        "CX_STATE_DIR": str(state_dir),
        "CX_API_PORT": str(port),
        "CX_LOG_FORMAT": "json",
        **environ,
    }
    environment.pop("DATABASE_URL", None)
    environment.pop("TEMPORAL_ADDRESS", None)
    return subprocess.Popen(
        [str(ROOT / ".venv/bin/cx"), "dev", "up", "--no-demo"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lines_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """The process's output lines up to the first with `marker`, read for at most START_WITHIN_S.

    A thread reads, so that a process that goes silent cannot block the test past the limit.
    """
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_WITHIN_S
    while (left_s := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left_s)
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"cx dev up ended before {marker!r}: {''.join(seen)}")
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} from cx dev up within {START_WITHIN_S} s: {''.join(seen)}")


def _leftovers(state_dir: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-af", str(state_dir)], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


# Its own waits: the stack's start (START_WITHIN_S, on a cold machine initdb and the dev server), the
# shutdown (SHUTDOWN_LIMIT_S + 15 s) and the cut request (30 s); it takes about 10 s when healthy.
@pytest.mark.timeout(START_WITHIN_S + SHUTDOWN_LIMIT_S + 15 + 30 + 30)
def test_sigterm_stops_make_run_while_a_request_hangs(tmp_path: Path) -> None:
    """A status request hangs on an exchange that no worker serves; SIGTERM still ends `cx dev up` and every
    server it started within SHUTDOWN_LIMIT_S."""
    state_dir = tmp_path / "state"
    port = free_port()
    stack = start_dev_stack(state_dir, port)
    try:
        lines = _lines_until(stack, "Worker running")
        token = next(line.split()[2] for line in lines if line.startswith("API token"))
        runtime = json.loads((state_dir / "runtime.json").read_text())
        app = application()
        started = subprocess.run(
            [str(TEMPORAL_CLI), "workflow", "start", "--address", runtime["temporal_address"], "--type", "Exchange",
             "--task-queue", "nobody-polls-this", "--workflow-id", f"exchange:{app.application_id}",
             "--input", app.model_dump_json(exclude_none=True)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr

        def hanging_request() -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/exchanges/{app.application_id}", headers={"Authorization": f"Bearer {token}"}
            )
            # Cut off by the shutdown: what this test wants.
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                urllib.request.urlopen(request, timeout=90).close()  # noqa: S310 - an http:// URL built just above

        request = threading.Thread(target=hanging_request)
        request.start()
        time.sleep(2)  # the request is now waiting on a query no worker will answer
        stopping = time.monotonic()
        stack.send_signal(signal.SIGTERM)
        code = stack.wait(SHUTDOWN_LIMIT_S + 15)
        took = time.monotonic() - stopping
        assert code == 0, (code, took)
        assert took < SHUTDOWN_LIMIT_S + 10, (code, took)
        request.join(30)
        assert not request.is_alive()
        assert _leftovers(state_dir) == []
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
