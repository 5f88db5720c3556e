"""`GET /privacy/people/{person}/export` (issue 16, item 2): a person's data over HTTP, for officers only.

An applicant of its own starts an exchange over HTTP (the real workflow on the dev server), with the
`Idempotency-Key` the API stores per principal; the officer's export of that applicant has the exchange, its
audit rows and the key, each with its source table, and is what `cx privacy export` prints.
"""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from clients.api import Principal
from ledger.privacy import PersonalDataExport, export_person, person_from
from ledger.rate_counts import add_one
from tests.api.conftest import MakeApi
from tests.api.helpers import APPLICANT, OFFICER, OPS, auth, body, recorded, reviewer_token, token_table
from tests.workflows.conftest import REVIEWERS


async def test_an_officer_exports_a_person_and_nobody_else_may(
    api: httpx.AsyncClient, make_api: MakeApi, partnership: str, pg_pool: asyncpg.Pool
) -> None:
    """The officer's export of an applicant holds their exchange, their audit rows, their idempotency key and
    their rate-limit counter, every row naming them and the document equal to the library's; the same request
    by the applicant themself, a reviewer or ops is refused (403), without a token 401; a malformed person or
    e-mail is 422."""
    subject = f"applicant-{uuid.uuid4().hex[:8]}"
    token = f"tok-privacy-applicant-{uuid.uuid4().hex}"
    client = make_api({**token_table(partnership), token: Principal(subject=subject, role="applicant")})
    data = body(partnership, submitted_by=subject)
    started = await client.post("/exchanges", json=data, headers={**auth(token), "Idempotency-Key": "k-1"})
    assert started.status_code == 201, started.text
    await recorded(client, OFFICER, data["application_id"])
    # A rate-limit counter of theirs, as the API keeps per principal when it limits writes (ADR 0023).
    await add_one(pg_pool, f"write:{subject}", 60)

    answer = await client.get(f"/privacy/people/{subject}/export", headers=auth(OFFICER))
    assert answer.status_code == 200, answer.text
    document = PersonalDataExport.model_validate(answer.json())
    sources = {item.source for item in document.items}
    assert {"exchanges", "audit_events", "idempotency_keys"} <= sources, sources
    (exchange,) = [item.row for item in document.items if item.source == "exchanges"]
    assert exchange["application_id"] == data["application_id"]
    naming = {"exchanges": "submitted_by", "audit_events": "actor_id", "idempotency_keys": "principal"}
    assert {i.row["bucket"] for i in document.items if i.source == "api_rate_counts"} == {f"write:{subject}"}
    named = [item for item in document.items if item.source != "api_rate_counts"]
    assert all(item.row[naming[item.source]] == subject for item in named)
    async with pg_pool.acquire() as conn:
        expected = await export_person(conn, person_from([subject], []))
    assert document.items == expected.items

    path = f"/privacy/people/{subject}/export"
    for refused in (token, APPLICANT, reviewer_token(REVIEWERS[0]), OPS):
        assert (await client.get(path, headers=auth(refused))).status_code == 403
    assert (await client.get(path)).status_code == 401
    for bad in ("/privacy/people/two%20words/export", f"{path}?email=not-an-address"):
        invalid = await client.get(bad, headers=auth(OFFICER))
        assert invalid.status_code == 422, invalid.text
        assert invalid.headers["content-type"] == "application/problem+json"
