"""The image's health probe (workers/healthcheck.py), run as Docker runs it: a fresh process, its exit code."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from workers.devstack import free_port
from workers.healthcheck import DEFAULT_URL, HEALTHY, UNHEALTHY, probe


class _Metrics(http.server.BaseHTTPRequestHandler):
    """/metrics answers 200, /broken 500, anything else 404: what a live, a failing and a wrong endpoint do."""

    def do_GET(self) -> None:
        status = {"/metrics": 200, "/broken": 500}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.healthcheck", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_a_live_endpoint_is_healthy_and_a_failing_one_is_not(metrics_server: str) -> None:
    """Exit 0 for a 200, exit 1 naming the status for a 500 or a 404, as Docker's HEALTHCHECK reads it."""
    assert _run(f"{metrics_server}/metrics").returncode == HEALTHY
    broken = _run(f"{metrics_server}/broken")
    assert broken.returncode == UNHEALTHY
    assert "HTTP 500" in broken.stderr
    assert "HTTP 404" in _run(f"{metrics_server}/nothing").stderr


def test_nobody_listening_is_unhealthy_within_the_probe_timeout() -> None:
    """A port nobody listens on (a process that died) fails at once, naming the URL."""
    url = f"http://127.0.0.1:{free_port()}/metrics"
    code, reason = probe(url, timeout_s=2)
    assert code == UNHEALTHY
    assert url in reason


def test_only_http_urls_are_probed() -> None:
    """A file:// URL (or a typo) is refused, not opened: the probe can only ask an HTTP endpoint."""
    code, reason = probe("file:///etc/passwd")
    assert code == UNHEALTHY
    assert "not an http(s) URL" in reason
    assert _run("a", "b").returncode == UNHEALTHY  # one URL at most


def test_the_default_is_the_metrics_port_the_manifests_set() -> None:
    """Without an argument it probes the port CX_METRICS_ADDRESS has in deploy/ (0.0.0.0:9464)."""
    assert DEFAULT_URL == "http://127.0.0.1:9464/metrics"
