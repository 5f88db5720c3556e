"""Partnerships and top-ups over HTTP: registered, booked once per reference, offered to the waitlist."""

from __future__ import annotations

import uuid

import asyncpg

from tests.api.conftest import MakeApi
from tests.api.helpers import (
    OFFICER,
    OPS,
    SERVICE,
    auth,
    body,
    cancel,
    fields,
    reviewed,
    seed_over_http,
    stage_is,
    token_table,
)

GRANT_CENTS = 95_000  # a five-day stay in France under policy 2022.1


async def test_a_top_up_books_once_and_funds_the_waiting_exchange(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """A partnership seeded over HTTP with 1 EUR waitlists an exchange; a top-up of 2,000 EUR books once and
    funds it (AGREEMENT); the same reference again books nothing; another amount under it is a 409."""
    partnership = f"p-top-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    await seed_over_http(api, partnership, budget_cents=100)
    again = await api.put(f"/partnerships/{partnership}", json={"name": "Renamed"}, headers=auth(OFFICER))
    assert again.status_code == 200
    assert again.json()["name"] == "Renamed"
    assert again.json()["allocated_cents"] == 100

    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(SERVICE))).status_code == 201
    app_id = data["application_id"]
    await reviewed(api, partnership, app_id)
    await stage_is(api, OFFICER, app_id, "WAITLISTED")

    top_up = {"amount_cents": 200_000, "reference": "EISMEA-2026-014"}
    booked = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=auth(OFFICER))
    assert booked.status_code == 201, booked.text
    assert booked.json()["replayed"] is False
    assert booked.json()["offered_to_waitlist"] is True
    funded = await stage_is(api, OFFICER, app_id, "AGREEMENT")
    assert funded["held_cents"] == GRANT_CENTS

    replay = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=auth(OFFICER))
    assert replay.status_code == 200
    assert replay.json()["transfer_id"] == booked.json()["transfer_id"]
    assert replay.json()["replayed"] is True
    other_amount = await api.post(
        f"/partnerships/{partnership}/top-ups", json={**top_up, "amount_cents": 1}, headers=auth(OFFICER)
    )
    assert other_amount.status_code == 409
    assert fields(other_amount) == ["reference"]

    budgets = {b["partnership_id"]: b for b in (await api.get("/budgets", headers=auth(OPS))).json()}
    assert budgets[partnership] == {
        "partnership_id": partnership,
        "allocated_cents": 200_100,
        "held_cents": GRANT_CENTS,
        "paid_cents": 0,
        "available_cents": 200_100 - GRANT_CENTS,
    }
    listed = {p["partnership_id"]: p for p in (await api.get("/partnerships", headers=auth(OPS))).json()}
    assert listed[partnership]["name"] == "Renamed"
    assert listed[partnership]["held_cents"] == GRANT_CENTS
    keys = await pg_pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE idempotency_key = $1", f"{partnership}:top-up:EISMEA-2026-014"
    )
    assert keys == 1, "the repeat booked nothing"
    await cancel(api, partnership, app_id)


async def test_top_ups_are_for_known_partnerships_by_officers_only(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """An unknown partnership is 404 naming partnership_id and creates no budget; services and ops are refused."""
    partnership = f"p-none-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    top_up = {"amount_cents": 100_000, "reference": "R-1"}
    unknown = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=auth(OFFICER))
    assert unknown.status_code == 404
    assert fields(unknown) == ["partnership_id"]
    budgets = {b["partnership_id"] for b in (await api.get("/budgets", headers=auth(OPS))).json()}
    assert partnership not in budgets
    for token in (SERVICE, OPS):
        refused = await api.post(f"/partnerships/{partnership}/top-ups", json=top_up, headers=auth(token))
        assert refused.status_code == 403
        assert (
            await api.put(f"/partnerships/{partnership}", json={"name": "x"}, headers=auth(token))
        ).status_code == 403
    zero = await api.post(
        f"/partnerships/{partnership}/top-ups", json={**top_up, "amount_cents": 0}, headers=auth(OFFICER)
    )
    assert zero.status_code == 422
    assert fields(zero) == ["amount_cents"]
    bad_id = await api.post("/partnerships/has%20space/top-ups", json=top_up, headers=auth(OFFICER))
    assert bad_id.status_code == 422
    assert fields(bad_id) == ["partnership_id"]
    assert not await pg_pool.fetchval("SELECT 1 FROM partnerships WHERE partnership_id = $1", partnership)
