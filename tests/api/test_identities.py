"""Parties and identities over HTTP (issue 11, items 1 and 2): nobody acts as someone else.

A principal acts as its subject and for the organisations and partnerships its credentials name: a
signature or a match confirmation only from a principal of that party, a review only from the assigned
reviewer as themself, an officer's decision only as the officer, `submitted_by` only the caller (unless the
back office imports a record), and the officers' fields of a start only from officers, each use recorded.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from clients.api import Principal, TokenConfigError, load_tokens
from tests.api.conftest import MakeApi
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    PARTY_SERVICE,
    SERVICE,
    WAIT_S,
    auth,
    body,
    cancel,
    fields,
    officer_of,
    open_reviewers,
    reviewed,
    reviewer_token,
    seed_over_http,
    stage_is,
    token_table,
)
from tests.waiting import eventually
from tests.workflows.conftest import REVIEWERS, panel_member, review

HOST = "tok-host-person-0000000"
VISITOR = "tok-visitor-person-00000"


def refusal(answer: httpx.Response) -> str | None:
    """The workflow's refusal type, or None for a refusal by the API's authorisation."""
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    value: str | None = answer.json().get("refusal")
    return value


CRM_TOKEN = "Vq8-rT2mZk5LwX0pNc7Hs4YdBf9GjE1a"
PHOTONICS_TOKEN = "p3Nw7Yc-Lm0KzR5tQx2VbH8sJd4Fg9Ue"


def test_principals_name_the_parties_they_act_for() -> None:
    """CX_API_TOKENS entries carry organisations and partnerships; entries without them stay valid and act for no
    party; a misspelt key is refused naming it (it would otherwise grant nothing, silently)."""
    tokens = load_tokens(
        {
            "CX_API_TOKENS": json.dumps(
                {
                    CRM_TOKEN: {"subject": "crm", "role": "service"},
                    PHOTONICS_TOKEN: {
                        "subject": "crm-photonics",
                        "role": "service",
                        "organisations": ["org-krakow-photonics"],
                        "partnerships": ["photonics4i"],
                    },
                }
            )
        }
    )
    crm, photonics = tokens.find(CRM_TOKEN), tokens.find(PHOTONICS_TOKEN)
    assert crm == Principal(subject="crm", role="service")
    assert crm.organisations == frozenset() == crm.partnerships
    assert photonics is not None
    assert photonics.partnerships == frozenset({"photonics4i"})
    with pytest.raises(TokenConfigError, match="organisation"):
        load_tokens(
            {"CX_API_TOKENS": json.dumps({CRM_TOKEN: {"subject": "a", "role": "applicant", "organisation": []}})}
        )
    with pytest.raises(TokenConfigError, match="partnerships"):
        load_tokens(
            {"CX_API_TOKENS": json.dumps({CRM_TOKEN: {"subject": "a", "role": "officer", "partnerships": ["a b"]}})}
        )


async def in_agreement(make_api: MakeApi) -> tuple[httpx.AsyncClient, str, dict[str, Any]]:
    """An exchange in AGREEMENT over HTTP, with tokens for a person of its host and of its visitor organisation."""
    partnership = f"p-id-{uuid.uuid4().hex[:8]}"
    data = body(partnership, host_partnership_id=f"{partnership}-host", submitted_by=APPLICANT_SUBJECT)
    people = {
        HOST: Principal(
            subject="ho-hanna", role="applicant", organisations=frozenset({data["host"]["organisation_id"]})
        ),
        VISITOR: Principal(
            subject="vo-vera", role="applicant", organisations=frozenset({data["visitor"]["organisation_id"]})
        ),
    }
    api = make_api({**token_table(partnership), **people})
    await seed_over_http(api, partnership, budget_cents=1_000_000)
    assert (await api.post("/exchanges", json=data, headers=auth(OFFICER))).status_code == 201
    await reviewed(api, partnership, data["application_id"])
    await stage_is(api, OFFICER, data["application_id"], "AGREEMENT")
    return api, partnership, data


async def test_each_party_signs_and_confirms_only_for_itself(make_api: MakeApi) -> None:
    """The applicant who submitted signs for no party; a host's person signs HO and confirms the host's side and
    nothing else; the partnership's CRM signs VOP for its people and never HO. Refusals are the API's (no
    `refusal`), naming `party`, `side` or `on_behalf_of`; nothing is recorded."""
    api, partnership, data = await in_agreement(make_api)
    app_id = data["application_id"]
    sign = f"/exchanges/{app_id}/updates/sign_commitment"
    match = f"/exchanges/{app_id}/updates/confirm_match"
    for party in ("HO", "HOP", "VO", "VOP"):
        submitter = await api.post(sign, json={"actor_id": APPLICANT_SUBJECT, "party": party}, headers=auth(APPLICANT))
        assert submitter.status_code == 403, party
        assert refusal(submitter) is None, party
        assert fields(submitter) == ["party"], party
    for party in ("HOP", "VO", "VOP"):
        host = await api.post(sign, json={"actor_id": "ho-hanna", "party": party}, headers=auth(HOST))
        assert host.status_code == 403, party
        assert fields(host) == ["party"], party
    visitor_side = await api.post(match, json={"actor_id": "ho-hanna", "side": "visitor"}, headers=auth(HOST))
    assert visitor_side.status_code == 403
    assert fields(visitor_side) == ["side"]
    host_as_visitor = await api.post(match, json={"actor_id": "vo-vera", "side": "host"}, headers=auth(VISITOR))
    assert host_as_visitor.status_code == 403
    assert fields(host_as_visitor) == ["side"]
    crm_as_host = await api.post(sign, json={"actor_id": "crm-person", "party": "HO"}, headers=auth(PARTY_SERVICE))
    assert crm_as_host.status_code == 403
    assert fields(crm_as_host) == ["party"]
    as_someone = await api.post(sign, json={"actor_id": "vo-vera", "party": "HO"}, headers=auth(HOST))
    assert as_someone.status_code == 403, "a person signs as themself"
    assert fields(as_someone) == ["actor_id"], "a person signs as themself"
    other_org = {"actor_id": "ho-hanna", "party": "HO", "on_behalf_of": data["visitor"]["organisation_id"]}
    mismatch = await api.post(sign, json=other_org, headers=auth(HOST))
    assert mismatch.status_code == 403
    assert fields(mismatch) == ["on_behalf_of"]
    status = (await api.get(f"/exchanges/{app_id}", headers=auth(OFFICER))).json()
    assert status["signatures"] == {}, "nothing refused was recorded"
    assert status["match_confirmed_by"] == {}, "nothing refused was recorded"

    signed = await api.post(sign, json={"actor_id": "ho-hanna", "party": "HO"}, headers=auth(HOST))
    assert signed.status_code == 200, signed.text
    assert signed.json()["signatures"] == {"HO": "ho-hanna"}, signed.text
    assert signed.json()["view"] == "party", "a party reads the party view"
    crm = await api.post(sign, json={"actor_id": "vop-victor", "party": "VOP"}, headers=auth(PARTY_SERVICE))
    assert crm.status_code == 200, crm.text
    confirmed = await api.post(match, json={"actor_id": "ho-hanna", "side": "host"}, headers=auth(HOST))
    assert confirmed.status_code == 200
    assert confirmed.json()["match_confirmed_by"] == {"host": "ho-hanna"}
    await cancel(api, partnership, app_id)


async def test_reviews_are_cast_only_by_the_assigned_reviewer_as_themself(
    api: httpx.AsyncClient, partnership: str
) -> None:
    """Officers and services cast no review and declare no conflict; an assigned reviewer cannot review or
    recuse in the other reviewer's name; the reviewers' own reviews count."""
    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(OFFICER))).status_code == 201
    app_id = data["application_id"]
    first, second = await open_reviewers(api, OFFICER, app_id)
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    path = f"/exchanges/{app_id}/updates"
    for token in (OFFICER, SERVICE, PARTY_SERVICE, APPLICANT):
        for update, payload in (
            ("submit_review", review(first)),
            ("declare_conflict", {"actor_id": first, "reason": "x"}),
        ):
            answer = await api.post(f"{path}/{update}", json=payload, headers=auth(token))
            assert answer.status_code == 403, (token, update, answer.text)
            assert refusal(answer) is None, (token, update, answer.text)
    for update, payload in (
        ("submit_review", review(second)),
        ("declare_conflict", {"actor_id": second, "reason": "pretending"}),
        ("request_changes", {"actor_id": second, "changes": "Please add an agenda."}),
    ):
        answer = await api.post(f"{path}/{update}", json=payload, headers=auth(reviewer_token(names[first])))
        assert answer.status_code == 403, (update, answer.text)
        assert fields(answer) == ["actor_id"], (update, answer.text)
    status = (await api.get(f"/exchanges/{app_id}", headers=auth(OFFICER))).json()
    assert status["review"]["submitted_by"] == []
    assert status["stage"] == "REVIEW"
    for member in (first, second):
        done = await api.post(f"{path}/submit_review", json=review(member), headers=auth(reviewer_token(names[member])))
        assert done.status_code == 200, done.text
    await stage_is(api, OFFICER, app_id, "FUNDING")
    await cancel(api, partnership, app_id)


async def test_an_officer_decides_as_themself_and_amendments_keep_the_submitter(
    api: httpx.AsyncClient, partnership: str, pg_pool: asyncpg.Pool
) -> None:
    """An officer's request for changes, override or cancel names the officer, never another person; the
    applicant's amendment cannot change `submitted_by` (the workflow refuses it); the officer who sent the
    application back cannot then override it (four-eyes against their own act), and a cancel in another's
    name is refused while one as themself ends the exchange."""
    data = body(partnership, submitted_by=APPLICANT_SUBJECT)
    assert (await api.post("/exchanges", json=data, headers=auth(APPLICANT))).status_code == 201
    app_id = data["application_id"]
    await open_reviewers(api, OFFICER, app_id)
    officer = officer_of(partnership)
    path = f"/exchanges/{app_id}/updates"
    approve = {"decision": "approve", "justification": "both reviewers are away"}
    for update, payload in (
        ("request_changes", {"actor_id": "officer-someone-else", "changes": "Please add an agenda."}),
        ("override", {"actor_id": "officer-someone-else", **approve}),
        ("cancel", {"actor_id": "officer-someone-else", "reason": "pretending"}),
    ):
        answer = await api.post(f"{path}/{update}", json=payload, headers=auth(OFFICER))
        assert answer.status_code == 403, (update, answer.text)
        assert fields(answer) == ["actor_id"], (update, answer.text)
    changes = {"actor_id": officer, "changes": "Please add a day-by-day agenda."}
    assert (await api.post(f"{path}/request_changes", json=changes, headers=auth(OFFICER))).status_code == 200
    amended = {**data, "submitted_by": "applicant-piet", "goals": "With a day-by-day agenda."}
    impostor = await api.post(
        f"{path}/amend_application",
        json={"actor_id": APPLICANT_SUBJECT, "application": amended},
        headers=auth(APPLICANT),
    )
    assert impostor.status_code == 403, impostor.text
    assert refusal(impostor) == "NotAllowed", impostor.text
    assert fields(impostor) == ["application.submitted_by"], "the workflow names the field"
    override = await api.post(f"{path}/override", json={"actor_id": officer, **approve}, headers=auth(OFFICER))
    assert override.status_code == 403, "four-eyes: they requested changes"
    assert refusal(override) == "NotAllowed", "four-eyes: they requested changes"
    await cancel(api, partnership, app_id)
    await stage_is(api, OFFICER, app_id, "CANCELLED")
    # The status moves before its projection is written: wait (bounded) for the audit row.
    actor = await eventually(
        lambda: pg_pool.fetchval(
            "SELECT actor_id FROM audit_events WHERE application_id = $1 AND stage = 'CANCELLED' ORDER BY sequence",
            app_id,
        ),
        lambda found: found is not None,
        f"{app_id}: the CANCELLED audit row",
        WAIT_S,
    )
    assert actor == officer, "the cancel is recorded as the officer's"


OFFICER_FIELDS: list[tuple[str, Any]] = [
    ("submitted_at", "2026-11-20T09:30:00Z"),
    ("policy_version", "2022.1"),
    ("host_agency_approved", False),  # the default is no field set; only `true` changes R3
    ("host_agency_approval_reference", "EISMEA-HA-2026-7"),
]


@pytest.mark.parametrize(("field", "value"), [f for f in OFFICER_FIELDS if f[1] is not False], ids=lambda v: str(v))
async def test_applicants_and_services_set_no_officer_field(
    api: httpx.AsyncClient, partnership: str, field: str, value: Any
) -> None:
    """`submitted_at` (backdating), `policy_version` and the host agency's approval move rules (R13, R3): an
    applicant or a service sending one is refused naming it, and nothing starts."""
    extra: dict[str, Any] = {field: value}
    if field == "host_agency_approval_reference":
        extra["host_agency_approved"] = True
    for token in (APPLICANT, SERVICE, PARTY_SERVICE):
        data = body(partnership, submitted_by=APPLICANT_SUBJECT, **extra)
        refused = await api.post("/exchanges", json=data, headers=auth(token))
        assert refused.status_code == 403, (token, refused.text)
        assert refusal(refused) is None, (token, refused.text)
        assert fields(refused)[0] in extra, (token, fields(refused))
        assert (await api.get(f"/exchanges/{data['application_id']}", headers=auth(OFFICER))).status_code == 404


async def test_submitted_by_is_the_applicant_and_officer_fields_are_recorded(
    api: httpx.AsyncClient, partnership: str, pg_pool: asyncpg.Pool
) -> None:
    """An applicant submits only as themself (403 naming `submitted_by`); a party's service only for its own
    visitor partnership; an officer sets the officer fields, and the SUBMITTED audit row records each one."""
    as_other = await api.post(
        "/exchanges", json=body(partnership, submitted_by="applicant-piet"), headers=auth(APPLICANT)
    )
    assert as_other.status_code == 403
    assert fields(as_other) == ["submitted_by"]
    elsewhere = body(f"{partnership}-other", submitted_by="crm-person")
    foreign = await api.post("/exchanges", json=elsewhere, headers=auth(PARTY_SERVICE))
    assert foreign.status_code == 403
    assert fields(foreign) == ["visitor_partnership_id"]
    own = body(partnership, submitted_by="crm-person")
    assert (await api.post("/exchanges", json=own, headers=auth(PARTY_SERVICE))).status_code == 201
    await cancel(api, partnership, own["application_id"])

    imported = body(
        partnership,
        submitted_by=APPLICANT_SUBJECT,
        policy_version="2022.1",
        host_agency_approved=True,
        host_agency_approval_reference="EISMEA-HA-2026-7",
    )
    started = await api.post("/exchanges", json=imported, headers=auth(OFFICER))
    assert started.status_code == 201, started.text
    await open_reviewers(api, OFFICER, imported["application_id"])
    details = await pg_pool.fetchval(
        """SELECT details FROM audit_events
            WHERE application_id = $1 AND stage = 'SUBMITTED' AND event = 'stage_entered'""",
        imported["application_id"],
    )
    assert json.loads(details)["officer_fields"] == {
        "policy_version": "2022.1",
        "host_agency_approved": True,
        "host_agency_approval_reference": "EISMEA-HA-2026-7",
    }
    await cancel(api, partnership, imported["application_id"])
