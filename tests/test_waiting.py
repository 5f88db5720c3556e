"""The tests' own waits (tests/waiting.py) take their timeout branches with messages that name what was awaited."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.waiting import eventually, within


class Flaky(Exception):
    """A transient failure a probe may raise while the awaited state settles."""


async def test_eventually_returns_the_first_value_that_passes_the_check() -> None:
    """The probe is polled until the check holds, and that value is returned."""
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await eventually(probe, lambda n: n >= 3, "the counter to reach 3", within_s=5, poll_s=0.001) == 3


async def test_eventually_fails_naming_what_it_awaited_and_the_last_value() -> None:
    """Past its limit the wait fails with an AssertionError naming the awaited thing and the last value seen."""

    async def probe() -> str:
        return "REVIEW"

    with pytest.raises(AssertionError, match=r"waited 0\.2 s for stage AGREEMENT; last seen: 'REVIEW'$"):
        await eventually(probe, lambda stage: stage == "AGREEMENT", "stage AGREEMENT", within_s=0.2)


async def test_a_probe_that_never_answers_is_cut_at_the_limit() -> None:
    """A probe that hangs (a query no worker answers) cannot outlive the wait: it is cut and named."""
    started = asyncio.get_running_loop().time()

    async def probe() -> int:
        await asyncio.Event().wait()
        return 0

    with pytest.raises(AssertionError, match="the last probe had not answered when the time was up"):
        await eventually(probe, lambda _: True, "an answer", within_s=0.2)
    assert asyncio.get_running_loop().time() - started < 5, "the hanging probe was cut at the wait's limit"


async def test_only_the_named_transient_exceptions_are_retried_and_the_last_one_is_reported() -> None:
    """A transient the caller named is retried (and reported if it lasts); any other exception propagates at once."""
    attempts = itertools.count()

    async def settles() -> str:
        if next(attempts) < 2:
            raise Flaky("not yet")
        return "ready"

    assert await eventually(settles, lambda v: v == "ready", "readiness", within_s=5, transient=(Flaky,)) == "ready"

    async def always_flaky() -> str:
        raise Flaky("still settling")

    with pytest.raises(AssertionError, match=r"last seen: Flaky\('still settling'\)"):
        await eventually(always_flaky, lambda _: True, "readiness", within_s=0.2, transient=(Flaky,))

    async def broken() -> str:
        raise ValueError("a real failure")

    with pytest.raises(ValueError, match="a real failure"):
        await eventually(broken, lambda _: True, "readiness", within_s=5, transient=(Flaky,))


async def test_within_names_the_awaited_thing_when_it_does_not_come() -> None:
    """`within` returns what came in time, and past its limit fails naming what it awaited."""
    assert await within(asyncio.sleep(0, "done"), "a quick thing", within_s=1) == "done"
    with pytest.raises(AssertionError, match=r"waited 0\.1 s for ex-1: the exchange's outcome; it did not come"):
        await within(asyncio.Event().wait(), "ex-1: the exchange's outcome", within_s=0.1)
