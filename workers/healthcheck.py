"""The container's health probe: `python -m workers.healthcheck [URL]` exits 0 when URL answers 200, else 1.

The runtime image has no curl or wget (deploy/Dockerfile): Docker's HEALTHCHECK and compose's healthchecks run
this instead, with the standard library only, so it starts in a few tens of milliseconds and imports nothing of
the engine. The default URL is the Prometheus endpoint that the worker and the dispatcher serve on
CX_METRICS_ADDRESS (0.0.0.0:9464 in deploy/): a process whose /metrics answers is alive. The API is probed at
its own /healthz (deploy/compose.yaml gives the URL).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

DEFAULT_URL = "http://127.0.0.1:9464/metrics"
# Docker's own timeout for the probe is 5 s (deploy/Dockerfile): answer before it, with a reason.
TIMEOUT_S = 3.0
HEALTHY, UNHEALTHY = 0, 1


def probe(url: str, timeout_s: float = TIMEOUT_S) -> tuple[int, str]:
    """The exit code for `url` and a one-line reason: 0 only for an HTTP 200 within `timeout_s`."""
    if not url.startswith(("http://", "https://")):
        return UNHEALTHY, f"{url!r}: not an http(s) URL"
    try:
        # The scheme is checked above: no file:// or other opener can be reached (ruff S310).
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return UNHEALTHY, f"{url}: {error}"
    if status != 200:
        return UNHEALTHY, f"{url}: HTTP {status}"
    return HEALTHY, f"{url}: HTTP 200"


def main(argv: Sequence[str]) -> int:
    """Probe the URL given (or DEFAULT_URL) and print the reason: Docker keeps it in `docker inspect`."""
    if len(argv) > 1:
        sys.stderr.write("usage: python -m workers.healthcheck [URL]\n")
        return UNHEALTHY
    code, reason = probe(argv[0] if argv else DEFAULT_URL)
    (sys.stdout if code == HEALTHY else sys.stderr).write(reason + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
