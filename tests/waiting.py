"""Bounded waits for tests: every wait has a limit and fails with a message naming what it awaited.

- `eventually(probe, check, what, within_s)`: poll `probe` until `check` holds on what it returns; each probe
  call is bounded by the time left, so a query no one answers cannot outlive the wait. No exception is
  swallowed unless the caller names it in `transient` (and the failure message then says which was seen).
- `within(awaitable, what, within_s)`: one awaited thing (a workflow's result, an update, a process) bounded,
  failing with an AssertionError that names it instead of a bare TimeoutError.

Failures are AssertionErrors: the test failed its expectation that something happens within a limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.05


class _NothingSeen:
    def __repr__(self) -> str:
        return "nothing (no probe answered)"


NOTHING_SEEN = _NothingSeen()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    what: str,
    within_s: float = 30,
    *,
    poll_s: float = POLL_S,
    transient: tuple[type[Exception], ...] = (),
) -> T:
    """Return the first value of `probe()` for which `check` holds; fail after `within_s` naming `what`.

    `transient`: exception types a probe may raise while the awaited state settles (each named by the
    caller, with the reason in a comment there); they are retried and the last one is reported. Any other
    exception propagates at once.
    """
    assert within_s > 0, "a wait needs a positive limit and poll interval"
    assert poll_s > 0, "a wait needs a positive limit and poll interval"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    last: object = NOTHING_SEEN
    unanswered = ""
    while True:
        left_s = deadline - loop.time()
        if left_s <= 0:
            break
        try:
            value = await asyncio.wait_for(probe(), left_s)
        except TimeoutError:
            unanswered = " (and the last probe had not answered when the time was up)"
            break
        except transient as error:
            last = error
        else:
            if check(value):
                return value
            last = value
        await asyncio.sleep(min(poll_s, max(0.0, deadline - loop.time())))
    raise AssertionError(f"waited {within_s:g} s for {what}; last seen: {last!r}{unanswered}")


async def within(awaitable: Awaitable[T], what: str, within_s: float = 30) -> T:
    """Await `awaitable` for at most `within_s`; past it, fail naming `what` (the awaitable is cancelled)."""
    assert within_s > 0, "a wait needs a positive limit"
    try:
        return await asyncio.wait_for(awaitable, within_s)
    except TimeoutError:
        raise AssertionError(f"waited {within_s:g} s for {what}; it did not come") from None
