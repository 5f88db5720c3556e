"""Every test has a time limit: a hung test fails at it naming where it hung, and the run goes on (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HUNG_TESTS = """
import asyncio
import time


async def test_hangs_on_an_await():
    await asyncio.Event().wait()  # the line a hung test must be failed at


def test_blocks_its_thread():
    time.sleep(60)


async def test_after_them():
    assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []
"""


def test_a_hung_test_fails_at_its_limit_naming_where_and_the_next_test_runs(pytester: pytest.Pytester) -> None:
    """Under a 4 s limit, an async test hung on an await fails inside its loop at the awaited line (its task
    gone before the next test), a blocked synchronous test fails by pytest-timeout's signal, and the run goes on."""
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = session
        asyncio_default_test_loop_scope = session
        pythonpath = {ROOT}
        timeout = 4
        """
    )
    pytester.makepyfile(test_hung=HUNG_TESTS)
    result = pytester.runpytest_subprocess("-p", "tests.time_limits", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_hangs_on_an_await*",
            "*await asyncio.Event().wait()  # the line a hung test must be failed at*",
            "*still awaiting after 2 s of its 4 s limit; the traceback shows where*",
        ]
    )
    result.stdout.fnmatch_lines(["*test_blocks_its_thread*", "*Timeout (>4.0s) from pytest-timeout*"])
