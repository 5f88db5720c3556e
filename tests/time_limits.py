"""A pytest plugin: an async test is cancelled in its own event loop a little before its time limit.

pytest-timeout gives every test a limit (`timeout` in pyproject.toml, or `@pytest.mark.timeout`), and on
Linux it ends a test that passes it with a signal. For an async test on the session's shared loop that
signal lands in the loop's `select()`: the failure names no line of the test, and the test's task lingers in
the loop, still polling, while the next tests run. So this plugin cancels the test's coroutine inside the
loop TEARDOWN_MARGIN_S before the limit: it fails with the traceback of the await it hung on, its task
ends, and its fixtures are torn down normally. pytest-timeout's signal stays the backstop for a hung
fixture, a synchronous test, or a loop blocked by synchronous code.

Loaded by tests/conftest.py (`pytest_plugins`); tests/test_time_limits.py proves both paths.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Generator
from typing import Any

import pytest

# How long before its pytest-timeout limit an async test is cancelled in its loop: time left for its
# fixtures' teardown (stopping a worker, a test server) before the backstop fires.
TEARDOWN_MARGIN_S = 10


def _limit_s(item: pytest.Item) -> float | None:
    """The test's pytest-timeout limit, read as pytest-timeout reads it: marker, option, environment, ini."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        raw = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    else:
        raw = item.config.getoption("timeout") or os.environ.get("PYTEST_TIMEOUT") or item.config.getini("timeout")
    return float(raw) if raw else None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Cancel an async test in its own loop shortly before its limit, failing with where it was awaiting."""
    limit_s = _limit_s(item) if item.config.pluginmanager.hasplugin("timeout") else None
    if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(item.obj) or not limit_s:
        yield
        return
    body_s = max(limit_s - TEARDOWN_MARGIN_S, limit_s / 2)
    test = item.obj

    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        deadline = asyncio.timeout(body_s)
        try:
            async with deadline:
                return await test(*args, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise  # the test's own timeout, not the limit
            pytest.fail(f"still awaiting after {body_s:g} s of its {limit_s:g} s limit; the traceback shows where")

    item.obj = bounded
    try:
        yield
    finally:
        item.obj = test
