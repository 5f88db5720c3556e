"""Idempotency-Key done right (issue 11, item 5; draft-ietf-httpapi-idempotency-key-header).

A key belongs to the principal who sends it and is bound to the request it first came with: the route, the
id in the path and a SHA-256 of the body (its canonical JSON, so that key order and spacing do not count).
- The same key with the same request replays the first answer, with `Idempotent-Replayed: true`.
- The same key with another request is refused with 422 naming `Idempotency-Key` (the draft's answer):
  before this, a `cancel` sent with a key used for another update was answered 200 and did nothing, since
  the key was the Temporal update id and Temporal answered the first update's result.
- A request whose key is still in flight gets 409 (the draft's answer) with `Retry-After`.
- Only final answers are stored: 2xx and the 4xx of business refusals (the workflow's, a conflicting
  top-up...). A 5xx or the engine's timeout releases the key, so the same request may be sent again.

Keys live in Postgres (`idempotency_keys`, ledger/migrations/0010_idempotency_keys.sql) for a day. The
Temporal update id is derived from the key *and* the request, so the workflow dedups a retry of the same
request (after a timeout, say) but never mistakes another request for it, even once the key has expired.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi.responses import JSONResponse, Response

from clients.api.problems import PROBLEM_MEDIA_TYPE, ProblemError, problem_response

KEEP_HOURS = 24
# How many expired keys one claim prunes on its way: enough to keep up, never a long statement.
PRUNE_BATCH = 100
# A row still in flight this long after the request's own deadline belongs to a request that was cut off
# (the process stopped, the deadline fired while the row was held): the key is free again.
LEASE_MARGIN_S = 5.0
REPLAYED_HEADER = "Idempotent-Replayed"
HEADER = "Idempotency-Key"
JSON_MEDIA_TYPE = "application/json"
_KEPT_HEADERS = ("location",)


def body_sha256(value: Any) -> str:
    """SHA-256 of a JSON value's canonical form (sorted keys, no spaces): the request's fingerprint."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """A route's final answer, before it becomes a response (so that it can be stored and replayed)."""

    status: int
    body: Any  # JSON-ready
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = JSON_MEDIA_TYPE


@dataclass(frozen=True)
class Request:
    """One request's binding: who sent the key, for which operation, on what, with which body."""

    key: str | None
    principal: str
    route: str
    resource_id: str
    body_sha256: str

    @property
    def update_id(self) -> str | None:
        """The Temporal update id: derived from the key and the whole request, or None (no key)."""
        if self.key is None:
            return None
        parts = (self.principal, self.key, self.route, self.resource_id, self.body_sha256)
        return "api-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


async def once(
    pool: asyncpg.Pool, request: Request, lease_s: float, produce: Callable[[], Awaitable[Answer]]
) -> Response:
    """Answer the request once per key: replay, refuse a reuse, or run `produce` and keep its final answer."""
    if request.key is None:
        return render(await produce())
    replay = await _claim(pool, request, lease_s)
    if replay is not None:
        return replay
    try:
        answer = await produce()
    except ProblemError as error:
        if error.problem.status >= 500:
            await _release(pool, request)
            raise
        problem = error.problem.model_dump(mode="json", exclude_none=True)
        await _store(pool, request, Answer(error.problem.status, problem, error.headers, PROBLEM_MEDIA_TYPE))
        return problem_response(error.problem, error.headers)
    except Exception:
        # Not an answer (a database that did not answer, a bug): the same request may come again.
        await _release(pool, request)
        raise
    # A cancellation (the request's deadline) leaves the row in flight: waiting on the database again here
    # could hang the very request the deadline cut. The lease frees it.
    await _store(pool, request, answer)
    return render(answer)


def render(answer: Answer, replayed: bool = False) -> Response:
    headers = {**answer.headers, **({REPLAYED_HEADER: "true"} if replayed else {})}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers, media_type=answer.media_type)


async def _claim(pool: asyncpg.Pool, request: Request, lease_s: float) -> Response | None:
    """Take the key for this request (None), or answer for it: the stored answer, 409 in flight, 422 reused."""
    await pool.execute(
        """DELETE FROM idempotency_keys
            WHERE principal = $1 AND key = $2
              AND (created_at < now() - make_interval(hours => $3)
                   OR (completed_at IS NULL AND created_at < now() - make_interval(secs => $4)))""",
        request.principal,
        request.key,
        KEEP_HOURS,
        lease_s + LEASE_MARGIN_S,
    )
    await pool.execute(
        """DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)
                ORDER BY created_at LIMIT $2))""",
        KEEP_HOURS,
        PRUNE_BATCH,
    )
    claimed = await pool.fetchval(
        """INSERT INTO idempotency_keys (principal, key, route, resource_id, body_sha256)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, key) DO NOTHING RETURNING true""",
        request.principal,
        request.key,
        request.route,
        request.resource_id,
        request.body_sha256,
    )
    if claimed:
        return None
    row = await pool.fetchrow(
        """SELECT route, resource_id, body_sha256, status_code, response_body, response_headers
             FROM idempotency_keys WHERE principal = $1 AND key = $2""",
        request.principal,
        request.key,
    )
    if row is None:
        # Released (a 5xx) between our insert and this read: the client may simply send it again.
        raise in_flight()
    if (row["route"], row["resource_id"], row["body_sha256"]) != (
        request.route,
        request.resource_id,
        request.body_sha256,
    ):
        where = f"{row['route']} on {row['resource_id']!r}" if row["resource_id"] else row["route"]
        raise ProblemError(
            422,
            "Idempotency-Key reused",
            f"this Idempotency-Key was first used for another request ({where}, another body or route); "
            "a new request needs a new key",
            [(HEADER, "already used for a different request")],
        )
    if row["status_code"] is None:
        raise in_flight()
    headers: dict[str, str] = json.loads(row["response_headers"])
    media_type = headers.pop("content-type", JSON_MEDIA_TYPE)
    return render(Answer(row["status_code"], json.loads(row["response_body"]), headers, media_type), replayed=True)


def in_flight() -> ProblemError:
    return ProblemError(
        409,
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; send it again in a moment",
        [(HEADER, "in progress")],
        headers={"Retry-After": "1"},
    )


async def _store(pool: asyncpg.Pool, request: Request, answer: Answer) -> None:
    headers = {k.lower(): v for k, v in answer.headers.items() if k.lower() in _KEPT_HEADERS}
    headers["content-type"] = answer.media_type
    await pool.execute(
        """UPDATE idempotency_keys
              SET status_code = $3, response_body = $4::jsonb, response_headers = $5::jsonb, completed_at = now()
            WHERE principal = $1 AND key = $2 AND completed_at IS NULL""",
        request.principal,
        request.key,
        answer.status,
        json.dumps(answer.body),
        json.dumps(headers),
    )


async def _release(pool: asyncpg.Pool, request: Request) -> None:
    await pool.execute(
        "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND completed_at IS NULL",
        request.principal,
        request.key,
    )
