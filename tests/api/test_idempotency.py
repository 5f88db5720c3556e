"""Idempotency-Key over HTTP (issue 11, item 5): a key replays its first answer and is never another request's.

The key is bound to the principal, the route, the exchange and the body. The issue's case: a `cancel` sent
with a key already used for another update on the same exchange was answered 200 and did nothing (Temporal
answered the first update's result for the same update id); now it is a 422 naming the key.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from clients.api.idempotency import Request, body_sha256
from clients.client import ExchangeClient, parse
from schemas.review import ExtendReviewDeadlineInput
from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    auth,
    body,
    cancel,
    fields,
    officer_of,
    open_reviewers,
    pdf,
    recorded,
    seed_over_http,
    stage_is,
    token_table,
)
from tests.waiting import eventually

REPLAYED = "idempotent-replayed"


def keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token), "Idempotency-Key": key}


async def extensions(pool: asyncpg.Pool, application_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE application_id = $1 AND event = 'review_deadline_extended'",
        application_id,
    )
    return count


async def projected_extensions(pool: asyncpg.Pool, application_id: str) -> int:
    """The extensions in the audit trail once the first is there: the update answers when the workflow has
    recorded it, and the projection writes it a moment later (activities/projection.py)."""
    return await eventually(lambda: extensions(pool, application_id), lambda n: n >= 1, "the extension projected")


async def in_review(api: httpx.AsyncClient, partnership: str) -> str:
    data = body(partnership, submitted_by=APPLICANT_SUBJECT)
    assert (await api.post("/exchanges", json=data, headers=auth(APPLICANT))).status_code == 201
    await open_reviewers(api, OFFICER, data["application_id"])
    return str(data["application_id"])


async def test_a_key_replays_its_first_answer_and_is_never_another_requests(
    api: httpx.AsyncClient, partnership: str, pg_pool: asyncpg.Pool
) -> None:
    """The same request with the same key replays the first answer (`Idempotent-Replayed: true`) and applies
    once; the key with a `cancel`, another body or another exchange is 422 naming `Idempotency-Key` and changes
    nothing; a refusal is kept and replayed too."""
    app_id, other_id = await in_review(api, partnership), await in_review(api, partnership)
    officer = officer_of(partnership)
    extend = {"actor_id": officer, "working_days": 5, "justification": "the panel is away this week"}
    path = f"/exchanges/{app_id}/updates"
    first = await api.post(f"{path}/extend_review_deadline", json=extend, headers=keyed(OFFICER, "k-extend"))
    assert first.status_code == 200, first.text
    assert REPLAYED not in first.headers, first.text
    again = await api.post(f"{path}/extend_review_deadline", json=extend, headers=keyed(OFFICER, "k-extend"))
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert await projected_extensions(pg_pool, app_id) == 1, "applied once"

    reused = [
        (f"{path}/cancel", {"actor_id": officer, "reason": "no longer needed"}),  # the case
        (f"{path}/extend_review_deadline", {**extend, "working_days": 3}),
        (f"/exchanges/{other_id}/updates/extend_review_deadline", extend),
    ]
    for where, payload in reused:
        refused = await api.post(where, json=payload, headers=keyed(OFFICER, "k-extend"))
        assert refused.status_code == 422, (where, refused.text)
        assert fields(refused) == ["Idempotency-Key"], (where, refused.text)
    status = (await api.get(f"/exchanges/{app_id}", headers=auth(OFFICER))).json()
    assert status["stage"] == "REVIEW"
    assert await extensions(pg_pool, app_id) == 1
    assert await extensions(pg_pool, other_id) == 0

    reopen = {"actor_id": officer, "justification": "the appeal was upheld"}
    refusal = await api.post(f"{path}/reopen", json=reopen, headers=keyed(OFFICER, "k-reopen"))
    assert refusal.status_code == 409
    assert refusal.json()["refusal"] == "WrongStage"
    kept = await api.post(f"{path}/reopen", json=reopen, headers=keyed(OFFICER, "k-reopen"))
    assert (kept.status_code, kept.headers[REPLAYED], kept.json()) == (409, "true", refusal.json())
    assert kept.headers["content-type"] == "application/problem+json"

    # Keys are the principal's own: the applicant's "k-extend" is a new key.
    withdraw = {"actor_id": APPLICANT_SUBJECT, "reason": "the traveller fell ill"}
    theirs = await api.post(f"{path}/withdraw", json=withdraw, headers=keyed(APPLICANT, "k-extend"))
    assert theirs.status_code == 200, theirs.text
    assert REPLAYED not in theirs.headers, theirs.text
    await stage_is(api, OFFICER, app_id, "WITHDRAWN")
    await cancel(api, partnership, other_id)


async def test_a_retry_after_a_lost_answer_is_applied_once_by_the_workflow(
    api: httpx.AsyncClient, partnership: str, pg_pool: asyncpg.Pool, dev_client: ExchangeClient
) -> None:
    """A first attempt reached the workflow but its answer was lost (a timeout releases the key): the same
    request with the same key becomes the same Temporal update id, so the workflow answers it without applying
    it twice."""
    app_id = await in_review(api, partnership)
    extend = {"actor_id": officer_of(partnership), "working_days": 5, "justification": "the panel is away"}
    route = "POST /exchanges/{application_id}/updates/extend_review_deadline"
    fingerprint = body_sha256(parse(ExtendReviewDeadlineInput, extend).model_dump(mode="json"))
    update_id = Request("k-lost", officer_of(partnership), route, app_id, fingerprint).update_id
    await dev_client.decide(app_id, "extend_review_deadline", extend, update_id=update_id)  # the lost attempt
    retried = await api.post(
        f"/exchanges/{app_id}/updates/extend_review_deadline", json=extend, headers=keyed(OFFICER, "k-lost")
    )
    assert retried.status_code == 200, retried.text
    assert await projected_extensions(pg_pool, app_id) == 1, "the workflow applied it once"
    await cancel(api, partnership, app_id)


async def test_starts_top_ups_and_uploads_take_a_key(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """A start, a top-up and an upload with a key replay their first answer (status, body, Location); the key
    with another body is 422 before anything is booked or started."""
    partnership = f"p-idem-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    await seed_over_http(api, partnership, budget_cents=100)
    data = body(partnership)
    started = await api.post("/exchanges", json=data, headers=keyed(OFFICER, "k-start"))
    assert started.status_code == 201, started.text
    replayed = await api.post("/exchanges", json=data, headers=keyed(OFFICER, "k-start"))
    assert (replayed.status_code, replayed.headers[REPLAYED], replayed.json()) == (201, "true", started.json())
    assert replayed.headers["location"] == started.headers["location"]
    other: dict[str, Any] = body(partnership)
    refused = await api.post("/exchanges", json=other, headers=keyed(OFFICER, "k-start"))
    assert refused.status_code == 422
    assert fields(refused) == ["Idempotency-Key"]
    assert (await api.get(f"/exchanges/{other['application_id']}", headers=auth(OFFICER))).status_code == 404

    top_up = {"amount_cents": 5_000, "reference": "EISMEA-IDEM-1"}
    booked = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=keyed(OFFICER, "k-top"))
    assert booked.status_code == 201, booked.text
    twice = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=keyed(OFFICER, "k-top"))
    assert (twice.status_code, twice.headers[REPLAYED], twice.json()) == (201, "true", booked.json())
    changed = {**top_up, "reference": "EISMEA-IDEM-2"}
    moved = await api.post(f"/partnerships/{partnership}/top-ups", json=changed, headers=keyed(OFFICER, "k-top"))
    assert moved.status_code == 422
    assert fields(moved) == ["Idempotency-Key"]
    references = await pg_pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE idempotency_key LIKE $1", f"{partnership}:top-up:EISMEA-IDEM-%"
    )
    assert references == 1, "nothing booked for the reused key"

    await recorded(api, OFFICER, data["application_id"])
    path = f"/exchanges/{data['application_id']}/evidence"

    def upload(content: bytes) -> dict[str, Any]:
        return {"files": {"file": ("pass.pdf", content, "application/pdf")}, "data": {"kind": "boarding_pass"}}

    stored = await api.post(path, **upload(pdf("idem-1")), headers=keyed(OFFICER, "k-upload"))
    assert stored.status_code == 201, stored.text
    again = await api.post(path, **upload(pdf("idem-1")), headers=keyed(OFFICER, "k-upload"))
    assert (again.status_code, again.headers[REPLAYED], again.json()) == (201, "true", stored.json())
    another = await api.post(path, **upload(pdf("idem-2")), headers=keyed(OFFICER, "k-upload"))
    assert another.status_code == 422
    assert fields(another) == ["Idempotency-Key"]
    assert len((await api.get(path, headers=auth(OFFICER))).json()) == 1
    await cancel(api, partnership, data["application_id"])
