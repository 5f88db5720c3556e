"""Rate limits of the REST API (issue 16, item 3): a principal's writes, and wrong tokens per client address.

- **Writes** (POST, PUT, PATCH, DELETE) count per principal subject: past `writes_per_minute` in a minute the
  caller gets 429 with `Retry-After`, and nothing is done. A runaway script or a stolen token is bounded.
- **Failed authentication** counts per client address: each request presenting a token that names no
  principal counts once; once `auth_failures` are counted in `auth_failure_window_s`, every request from that
  address is answered 429 with `Retry-After` *before its token is looked at*, so a guess that would be right
  teaches nothing either. A request with no token at all guesses nothing and is not counted.

Counts live in Postgres (ledger/rate_counts.py, migration 0013), so every API process shares them. Behind a
reverse proxy the client address is the proxy's unless uvicorn trusts its `X-Forwarded-For`
(`FORWARDED_ALLOW_IPS`; docs/operations.md, "TLS termination"). The web app's in-process calls to the API
carry no address (they count writes, never failures): its sign-in form counts failures for the browser's.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from clients.api.problems import ProblemError
from ledger.rate_counts import WindowCount, add_one, current, prune

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITE_WINDOW_S = 60
# Expired windows are deleted once every this many counts by a process: cheap, and the table stays small.
PRUNE_EVERY = 1000


@dataclass(frozen=True)
class RateLimitSettings:
    """CX_API_WRITE_RATE (writes per principal per minute), CX_API_AUTH_FAILURES per
    CX_API_AUTH_FAILURE_WINDOW_S (wrong tokens per client address); 0 turns a limit off."""

    writes_per_minute: int = 120
    auth_failures: int = 20
    auth_failure_window_s: int = 600


def too_many(retry_after_s: int, detail: str) -> ProblemError:
    return ProblemError(
        429,
        "Too many requests",
        detail,
        [("Retry-After", f"wait {retry_after_s} s before trying again")],
        headers={"Retry-After": str(retry_after_s)},
    )


class RateLimits:
    """The two limits over one pool; each check is one query."""

    def __init__(self, pool: asyncpg.Pool, settings: RateLimitSettings) -> None:
        self.pool = pool
        self.settings = settings
        self._counted = 0

    async def refuse_blocked_address(self, address: str) -> None:
        """429 when `address` has used up its failed authentications in the current window."""
        limit, window_s = self.settings.auth_failures, self.settings.auth_failure_window_s
        if limit <= 0:
            return
        seen = await current(self.pool, f"auth-failure:{address}", window_s)
        if seen.count >= limit:
            detail = f"too many failed authentications from this address: {limit} allowed in {window_s} s"
            raise too_many(seen.seconds_left, detail)

    async def count_failure(self, address: str) -> None:
        if self.settings.auth_failures > 0:
            await self._add(f"auth-failure:{address}", self.settings.auth_failure_window_s)

    async def take_write(self, subject: str) -> None:
        """Count one write of `subject`; 429 (counting nothing more) past the limit."""
        limit = self.settings.writes_per_minute
        if limit <= 0:
            return
        counted = await self._add(f"write:{subject}", WRITE_WINDOW_S)
        if counted.count > limit:
            raise too_many(counted.seconds_left, f"at most {limit} writes a minute per principal")

    async def _add(self, bucket: str, window_s: int) -> WindowCount:
        self._counted += 1
        if self._counted % PRUNE_EVERY == 0:
            await prune(self.pool)
        return await add_one(self.pool, bucket, window_s)
