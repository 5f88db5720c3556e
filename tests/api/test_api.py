"""The REST API over HTTP against the real stack: starts, replays, reads, updates and every refusal."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from clients.api import Principal, TokenConfigError, create_app, load_tokens
from clients.client import ExchangeClient
from tests.api.helpers import (
    APPLICANT,
    OFFICER,
    OPS,
    OTHER_APPLICANT,
    SERVICE,
    auth,
    cancel,
    listed,
    open_reviewers,
    reviewer_token,
    token_table,
)
from tests.api.helpers import body as application_body
from tests.factories import application
from tests.workflows.conftest import REVIEWERS, panel_member, review

STRONG = "k3Jd9-Qm2xZpL7aV0tRw8bNcY4eHf6Ug"


def test_tokens_come_from_configuration_with_a_clear_error() -> None:
    """CX_API_TOKENS parses into principals; a bad role or a missing variable is named in the error."""
    tokens = load_tokens({"CX_API_TOKENS": f'{{"{STRONG}": {{"subject": "crm", "role": "service"}}}}'})
    assert tokens.find(STRONG) == Principal(subject="crm", role="service")
    with pytest.raises(TokenConfigError, match="role"):
        load_tokens({"CX_API_TOKENS": f'{{"{STRONG}": {{"subject": "crm", "role": "king"}}}}'})
    with pytest.raises(TokenConfigError, match="not set"):
        load_tokens({})


async def test_probes_answer_without_a_token(api: httpx.AsyncClient) -> None:
    """/healthz and /readyz need no token; readiness checks Postgres and Temporal."""
    assert (await api.get("/healthz")).status_code == 200
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_start_is_idempotent_and_a_conflicting_replay_is_refused(
    api: httpx.AsyncClient, partnership: str
) -> None:
    """A start answers 201; the same body again 200 with the same workflow id; a different body 409."""
    data = application_body(partnership)
    first = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert first.status_code == 201, first.text
    assert first.json()["workflow_id"] == f"exchange:{data['application_id']}"
    again = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "replayed": True}
    changed = await api.post("/exchanges", json={**data, "goals": "something else"}, headers=auth(SERVICE))
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    assert changed.json()["errors"][0]["field"] == "application_id"
    status = await api.get(f"/exchanges/{data['application_id']}", headers=auth(OPS))
    assert status.status_code == 200
    assert status.json()["application_id"] == data["application_id"]
    missing = await api.get("/exchanges/no-such-exchange", headers=auth(OFFICER))
    assert missing.status_code == 404
    assert missing.json()["status"] == 404


async def test_invalid_input_is_a_422_naming_the_field(api: httpx.AsyncClient, partnership: str) -> None:
    """A missing field, a bad date and a bad update body each answer 422 naming the field; no 500."""
    data = application_body(partnership)
    del data["submitted_by"]
    missing = await api.post("/exchanges", json=data, headers=auth(OFFICER))
    assert missing.status_code == 422
    assert missing.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in missing.json()["errors"]] == ["submitted_by"]
    bad_date = await api.post(
        "/exchanges", json={**application_body(partnership), "start_date": "not-a-date"}, headers=auth(OFFICER)
    )
    assert bad_date.status_code == 422
    assert bad_date.json()["errors"][0]["field"] == "start_date"
    bad_update = await api.post("/exchanges/x1/updates/cancel", json={"actor_id": "a"}, headers=auth(OFFICER))
    assert bad_update.status_code == 422
    assert bad_update.json()["errors"][0]["field"] == "reason"
    bad_id = await api.get("/exchanges/%20bad%20id", headers=auth(OFFICER))
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["field"] == "application_id"
    bad_json = await api.post("/exchanges", content=b"{", headers={**auth(OFFICER), "Content-Type": "application/json"})
    assert bad_json.status_code == 422


async def test_authentication_and_roles(api: httpx.AsyncClient, partnership: str) -> None:
    """No token or an unknown one is 401; ops may read but not write (403); applicants start only their own."""
    anonymous = await api.get("/exchanges")
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "a bearer token is required"
    unknown = await api.get("/exchanges", headers=auth("not-a-configured-token"))
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"', "RFC 6750: sent, refused"
    ops_start = await api.post("/exchanges", json=application_body(partnership), headers=auth(OPS))
    assert ops_start.status_code == 403
    assert ops_start.json()["title"] == "Forbidden"
    assert (await api.get("/budgets", headers=auth(OPS))).status_code == 200
    assert (await api.get("/budgets", headers=auth(APPLICANT))).status_code == 403
    signal = await api.post(
        "/exchanges/x1/signals/confirm_payment",
        json={"payment_reference": "r1", "confirmed_by": "ops-olga"},
        headers=auth(OPS),
    )
    assert signal.status_code == 403
    internal = await api.post(
        "/exchanges/x1/signals/funds_held", json={"hold_id": 1, "amount_cents": 1}, headers=auth(OFFICER)
    )
    assert internal.status_code == 404, "funds_held comes from the Funds workflow only"
    someone_else = await api.post(
        "/exchanges", json=application_body(partnership, submitted_by="applicant-piet"), headers=auth(APPLICANT)
    )
    assert someone_else.status_code == 403
    assert someone_else.json()["errors"][0]["field"] == "submitted_by"


async def test_applicants_see_and_act_only_on_their_own(api: httpx.AsyncClient, partnership: str) -> None:
    """An applicant starts and reads their own exchange; someone else's answers 404, as if it did not exist."""
    own = application_body(partnership, submitted_by="applicant-ola")
    started = await api.post("/exchanges", json=own, headers=auth(APPLICANT))
    assert started.status_code == 201, started.text
    app_id = own["application_id"]
    assert (await api.get(f"/exchanges/{app_id}", headers=auth(APPLICANT))).status_code == 200
    assert (await api.get(f"/exchanges/{app_id}", headers=auth(OTHER_APPLICANT))).status_code == 404
    withdraw = {"actor_id": "applicant-piet", "reason": "not mine to withdraw"}
    refused = await api.post(f"/exchanges/{app_id}/updates/withdraw", json=withdraw, headers=auth(OTHER_APPLICANT))
    assert refused.status_code == 404
    as_other = {"actor_id": "applicant-piet", "reason": "pretending"}
    impersonation = await api.post(f"/exchanges/{app_id}/updates/withdraw", json=as_other, headers=auth(APPLICANT))
    assert impersonation.status_code == 403
    assert impersonation.json()["errors"][0]["field"] == "actor_id"
    page = await listed(api, APPLICANT, 1)
    assert {row["application_id"] for row in page["items"]} >= {app_id}
    assert app_id not in {row["application_id"] for row in (await listed(api, OTHER_APPLICANT, 0))["items"]}
    await cancel(api, partnership, app_id)


async def test_reviewers_act_only_where_assigned(api: httpx.AsyncClient, partnership: str) -> None:
    """An assigned reviewer's review goes through the API; the unassigned one is refused and sees nothing."""
    data = application_body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(OFFICER))).status_code == 201
    app_id = data["application_id"]
    open_ = await open_reviewers(api, OFFICER, app_id)
    assigned_ids = set(open_)
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    outsider = next(n for member, n in names.items() if member not in assigned_ids)
    insider_member = sorted(assigned_ids)[0]
    insider = names[insider_member]
    refused = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(panel_member(partnership, outsider)),
        headers=auth(reviewer_token(outsider)),
    )
    assert refused.status_code == 404, refused.text
    assert (await api.get(f"/exchanges/{app_id}", headers=auth(reviewer_token(outsider)))).status_code == 404
    done = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(insider_member),
        headers={**auth(reviewer_token(insider)), "Idempotency-Key": f"{app_id}:review:{insider}"},
    )
    assert done.status_code == 200, done.text
    retried = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(insider_member),
        headers={**auth(reviewer_token(insider)), "Idempotency-Key": f"{app_id}:review:{insider}"},
    )
    assert retried.status_code == 200, "a retry with the same Idempotency-Key gets the first answer"
    mine = next(a for a in done.json()["review"]["assignments"] if a["reviewer_id"] == insider_member)
    assert mine["status"] != "open"
    twice = await api.post(
        f"/exchanges/{app_id}/updates/submit_review",
        json=review(insider_member),
        headers=auth(reviewer_token(insider)),
    )
    assert twice.status_code == 409
    assert twice.json()["title"] == "Decision refused"
    page = await listed(api, reviewer_token(insider), 1)
    assert app_id in {row["application_id"] for row in page["items"]}
    outsider_page = (await api.get("/exchanges", params={"limit": 100}, headers=auth(reviewer_token(outsider)))).json()
    assert app_id not in {row["application_id"] for row in outsider_page["items"]}
    await cancel(api, partnership, app_id)


async def test_list_pages_through_the_read_model(api: httpx.AsyncClient, partnership: str) -> None:
    """Three exchanges of one partnership list as pages of two and one, with next_offset."""
    session_partnership, partnership = partnership, f"p-page-{uuid.uuid4().hex[:8]}"
    ids = []
    for _ in range(3):
        data = application(visitor_partnership_id=partnership, host_partnership_id=partnership)
        started = await api.post("/exchanges", json=data.model_dump(mode="json"), headers=auth(SERVICE))
        assert started.status_code == 201
        ids.append(data.application_id)
    await listed(api, OPS, 3, partnership=partnership)
    first = (await api.get("/exchanges", params={"partnership": partnership, "limit": 2}, headers=auth(OPS))).json()
    assert len(first["items"]) == 2
    assert first["next_offset"] == 2
    params: dict[str, str | int] = {"partnership": partnership, "limit": 2, "offset": 2}
    second = (await api.get("/exchanges", params=params, headers=auth(OPS))).json()
    assert len(second["items"]) == 1
    assert second["next_offset"] is None
    assert sorted(r["application_id"] for r in first["items"] + second["items"]) == sorted(ids)
    too_big = await api.get("/exchanges", params={"limit": 1000}, headers=auth(OPS))
    assert too_big.status_code == 422
    assert too_big.json()["errors"][0]["field"] == "limit"
    for app_id in ids:
        await cancel(api, session_partnership, app_id)


async def test_readiness_reports_a_database_that_does_not_answer(dev_client: ExchangeClient, database_url: str) -> None:
    """/readyz and reads answer 503 problem documents when Postgres does not answer; /healthz still 200."""
    closed = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    app = create_app(dev_client, closed, token_table("p-unused"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("postgres")
        assert (await client.get("/healthz")).status_code == 200
        listing = await client.get("/exchanges", headers=auth(OPS))
        assert listing.status_code == 503
        assert listing.headers["content-type"] == "application/problem+json"
