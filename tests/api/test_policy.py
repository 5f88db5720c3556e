"""Policy over HTTP: the versions on file, and a dry run of a candidate that changes nothing anywhere."""

from __future__ import annotations

import asyncio
import json
import tomllib
from typing import Any

import asyncpg
import httpx

from ledger.store import LedgerStore
from schemas.policy import POLICIES_DIR, known_versions
from tests.api.helpers import (
    APPLICANT,
    OFFICER,
    OPS,
    SERVICE,
    auth,
    body,
    cancel,
    fields,
    open_reviewers,
    reviewer_token,
)
from tests.waiting import eventually
from tests.workflows.conftest import REVIEWERS

SHIPPED = POLICIES_DIR / "clusterxchange-2022.1.toml"


async def snapshot(pool: asyncpg.Pool, application_id: str) -> tuple[Any, ...]:
    """What a write would touch for this exchange: its read-model row, its audit trail and its ledger account.

    Only this exchange's: other tests' exchanges may still be settling in the background meanwhile.
    """
    row = await pool.fetchrow("SELECT * FROM exchanges WHERE application_id = $1", application_id)
    events = await pool.fetchval("SELECT count(*) FROM audit_events WHERE application_id = $1", application_id)
    history = await LedgerStore(pool).exchange_history(application_id)
    return dict(row or {}), events, history


async def settled(pool: asyncpg.Pool, application_id: str) -> tuple[Any, ...]:
    """The snapshot once the projection has caught up: the same twice, half a second apart (bounded: 30 s)."""
    seen = [await snapshot(pool, application_id)]

    async def next_snapshot() -> tuple[Any, ...]:
        seen.append(await snapshot(pool, application_id))
        return seen[-1]

    def steady(now: tuple[Any, ...]) -> bool:
        return now == seen[-2] and now[0].get("stage") == "REVIEW"

    await asyncio.sleep(0.5)
    return await eventually(
        next_snapshot, steady, f"{application_id}: the read model to settle in REVIEW", within_s=30, poll_s=0.5
    )


async def test_every_role_reads_the_versions(api: httpx.AsyncClient) -> None:
    """GET /policies lists each version on file with the day it takes effect."""
    answer = await api.get("/policies", headers=auth(reviewer_token(REVIEWERS[0])))
    assert answer.status_code == 200
    assert [v["version"] for v in answer.json()] == list(known_versions())
    assert answer.json()[0]["effective_from"]


async def test_a_dry_run_reports_and_changes_nothing(
    api: httpx.AsyncClient, partnership: str, pg_pool: asyncpg.Pool
) -> None:
    """A candidate as TOML text or as JSON is evaluated over the open exchanges; the database is as before."""
    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(SERVICE))).status_code == 201
    app_id = data["application_id"]
    await open_reviewers(api, OFFICER, app_id)  # in REVIEW, waiting for people: nothing moves by itself now
    before = await settled(pg_pool, app_id)
    candidate_text = SHIPPED.read_text().replace("lump_sum_cap_cents = 110000", "lump_sum_cap_cents = 90000")
    assert candidate_text != SHIPPED.read_text(), "the candidate lowers the cap"
    as_toml = await api.post("/policies/dry-run", json={"toml": candidate_text}, headers=auth(OPS))
    assert as_toml.status_code == 200, as_toml.text
    report = as_toml.json()
    assert report["candidate_version"] == "2022.1"
    mine = next(e for e in report["exchanges"] if e["application_id"] == app_id)
    assert mine["partnership_id"] == partnership
    assert mine["outcome_candidate"] == "eligible"
    document = json.loads(json.dumps(tomllib.loads(candidate_text), default=str))
    as_json = await api.post("/policies/dry-run", json={"policy": document}, headers=auth(OFFICER))
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["candidate_version"] == "2022.1"
    assert await snapshot(pg_pool, app_id) == before, "a dry run writes nothing"
    await cancel(api, partnership, app_id)


async def test_a_bad_candidate_is_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    """A quoted number, broken TOML, or both forms at once: 422 naming the field; applicants may not dry-run."""
    quoted = SHIPPED.read_text().replace("lump_sum_cap_cents = 110000", 'lump_sum_cap_cents = "110000"')
    refused = await api.post("/policies/dry-run", json={"toml": quoted}, headers=auth(OFFICER))
    assert refused.status_code == 422
    assert any(f.startswith("toml.pricing") and f.endswith("cap_cents") for f in fields(refused)), fields(refused)
    broken = await api.post("/policies/dry-run", json={"toml": "version = "}, headers=auth(OFFICER))
    assert broken.status_code == 422
    assert fields(broken) == ["toml.(syntax)"]
    both = await api.post("/policies/dry-run", json={"toml": "x", "policy": {}}, headers=auth(OFFICER))
    assert both.status_code == 422
    assert (await api.post("/policies/dry-run", json={"toml": "x"}, headers=auth(APPLICANT))).status_code == 403
