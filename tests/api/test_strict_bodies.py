"""JSON bodies are parsed as strictly as the workflow parses payloads: what the API accepts, the engine accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import OFFICER, SERVICE, auth, body, fields, officer_of, reviewer_token
from tests.workflows.conftest import REVIEWERS

NO_SUCH_EXCHANGE = "app-strict-never-started"


def start_with(partnership: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    data = body(partnership)
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return data["application_id"], data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host_agency_approved": 1}, "host_agency_approved"),  # 1 is not a boolean
        ({"visitor__latitude": "50.06"}, "visitor.latitude"),  # a string is not a number
        ({"start_date": 20260504}, "start_date"),  # a number is not a date
        ({"surprise": "field"}, "surprise"),  # unknown fields are refused, not dropped
        ({"visitor__member_of_profiled_cluster": "true"}, "visitor.member_of_profiled_cluster"),
    ],
)
async def test_a_start_with_lax_json_is_refused_naming_the_field_and_starts_nothing(
    api: httpx.AsyncClient, partnership: str, change: dict[str, Any], field: str
) -> None:
    """Each coercion pydantic's lax mode would make is a 422 naming the field; no exchange exists afterwards."""
    application_id, data = start_with(partnership, **change)
    refused = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert refused.status_code == 422, refused.text
    assert field in fields(refused)
    assert (await api.get(f"/exchanges/{application_id}", headers=auth(OFFICER))).status_code == 404


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        (
            f"/exchanges/{NO_SUCH_EXCHANGE}/updates/extend_review_deadline",
            {"actor_id": "officer-anna", "working_days": "5", "justification": "Reviewers asked for more time."},
            "working_days",
        ),
        (
            f"/exchanges/{NO_SUCH_EXCHANGE}/signals/confirm_payment",
            {
                "payment_order_id": f"po-{NO_SUCH_EXCHANGE}",
                "amount_cents": 95000.0,  # a float is not cents, even a whole one
                "payment_reference": "SEPA-1",
                "confirmed_by": "finance",
            },
            "amount_cents",
        ),
        (
            f"/exchanges/{NO_SUCH_EXCHANGE}/updates/submit_review",
            {"actor_id": "r", "recommendation": "approve", "scores": {"relevance": "4"}},
            "scores.relevance",
        ),
        (
            f"/exchanges/{NO_SUCH_EXCHANGE}/updates/validate_report",
            {"actor_id": "vop", "decision": "accept", "approved": True},
            "approved",
        ),
        ("/partnerships/p-strict/top-ups", {"amount_cents": "2500000", "reference": "R-1"}, "amount_cents"),
        ("/partnerships/p-strict/top-ups", {"amount_cents": 12.5, "reference": "R-1"}, "amount_cents"),
    ],
)
async def test_messages_with_lax_json_are_refused_before_anything_is_sent(
    api: httpx.AsyncClient, path: str, payload: dict[str, Any], field: str
) -> None:
    """ "5" for an integer, a float for cents, a string score or an unknown field: 422 naming it, nothing sent."""
    # Each sent by a principal whose kind may send it (reviews are the reviewers'), so the body is read.
    token = reviewer_token(REVIEWERS[0]) if path.endswith("/submit_review") else OFFICER
    refused = await api.post(path, json=payload, headers=auth(token))
    assert refused.status_code == 422, refused.text
    assert field in fields(refused)


async def test_a_body_that_is_not_a_json_object_is_refused(api: httpx.AsyncClient) -> None:
    """Not JSON, NaN, an array, another media type and an oversized body each answer a problem, never a 500."""
    path = f"/exchanges/{NO_SUCH_EXCHANGE}/updates/cancel"
    as_json = {**auth(OFFICER), "Content-Type": "application/json"}
    broken = await api.post(path, content=b'{"actor_id": ', headers=as_json)
    assert broken.status_code == 422
    assert fields(broken) == ["body"]
    nan = await api.post(path, content=b'{"actor_id": "a", "reason": NaN}', headers=as_json)
    assert nan.status_code == 422
    assert fields(nan) == ["body"]
    array = await api.post(path, content=b"[]", headers=as_json)
    assert array.status_code == 422
    assert fields(array) == ["body"]
    form = await api.post(path, data={"actor_id": "a", "reason": "b"}, headers=auth(OFFICER))
    assert form.status_code == 415
    assert fields(form) == ["Content-Type"]
    huge = await api.post(path, content=b'{"reason": "' + b"x" * (2 * 1024 * 1024) + b'"}', headers=as_json)
    assert huge.status_code == 413, huge.text
    assert fields(huge) == ["body"], huge.text


async def test_text_postgres_cannot_hold_is_refused_at_the_door(api: httpx.AsyncClient, partnership: str) -> None:
    """U+0000 and lone surrogates pass the models but not Postgres text: 422 naming each field, nothing written."""
    application_id, data = start_with(partnership, goals="clean\x00room", visitor__name="Krakow\x00")
    refused = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert refused.status_code == 422
    assert sorted(fields(refused)) == ["goals", "visitor.name"]
    assert (await api.get(f"/exchanges/{application_id}", headers=auth(OFFICER))).status_code == 404
    person = {
        "reviewer_id": "nul-reviewer",
        "name": "Anna\x00",
        "organisation_id": "org-1",
        "country": "BE",
        "partnership_id": partnership,
        "roles": ["reviewer"],
    }
    reviewer = await api.post("/reviewers", json=person, headers=auth(OFFICER))
    assert reviewer.status_code == 422
    assert fields(reviewer) == ["name"]
    cancel = {"actor_id": "officer-anna", "reason": "ill\x00"}
    update = await api.post(f"/exchanges/{NO_SUCH_EXCHANGE}/updates/cancel", json=cancel, headers=auth(OFFICER))
    assert update.status_code == 422
    assert fields(update) == ["reason"]
    # A lone surrogate is valid JSON text but no UTF-8 string: named the same way.
    surrogate = b'{"actor_id": "officer-anna", "reason": "ill \\ud800"}'
    lone = await api.post(
        f"/exchanges/{NO_SUCH_EXCHANGE}/updates/cancel",
        content=surrogate,
        headers={**auth(OFFICER), "Content-Type": "application/json"},
    )
    assert lone.status_code == 422, lone.text
    assert fields(lone) == ["reason"], lone.text


async def test_the_same_body_in_proper_json_is_accepted(api: httpx.AsyncClient, partnership: str) -> None:
    """The control: the start body the first test spoils, sent as the contract spells it, starts the exchange."""
    application_id, data = start_with(partnership)
    started = await api.post("/exchanges", json=data, headers=auth(SERVICE))
    assert started.status_code == 201, started.text
    cancelled = await api.post(
        f"/exchanges/{application_id}/updates/cancel",
        json={"actor_id": officer_of(partnership), "reason": "test finished"},
        headers=auth(OFFICER),
    )
    assert cancelled.is_success, cancelled.text
