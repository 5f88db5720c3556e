"""Tokens, bodies and bounded waits shared by the REST API tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from clients.api import Principal
from rules.calendar import working_days
from tests.factories import application
from tests.workflows.conftest import REVIEWERS, panel_member, review

OFFICER = "tok-officer-0000000000"
SERVICE = "tok-service-0000000000"  # a programme service: it names no party
PARTY_SERVICE = "tok-party-service-0000"  # a CRM acting for the session partnership (HOP and VOP)
OPS = "tok-ops-00000000000000"
APPLICANT = "tok-applicant-00000000"
OTHER_APPLICANT = "tok-applicant-11111111"
APPLICANT_SUBJECT = "applicant-ola"
WAIT_S = 30.0
POLL_S = 0.05


def reviewer_token(name: str) -> str:
    return f"tok-reviewer-{name}-000000"


def officer_of(partnership_id: str) -> str:
    """The programme officer of the partnership's panel: the officer token's subject (the workflow checks
    that an officer's act comes from an officer of the exchange's partnership)."""
    return panel_member(partnership_id, "officer")


def token_table(partnership_id: str) -> dict[str, Principal]:
    """Officer, services, ops, two applicants, and one token per reviewer of the partnership's panel."""
    partnerships = frozenset({partnership_id})
    tokens = {
        OFFICER: Principal(subject=officer_of(partnership_id), role="officer", partnerships=partnerships),
        SERVICE: Principal(subject="crm", role="service"),
        PARTY_SERVICE: Principal(subject=f"crm-{partnership_id}", role="service", partnerships=partnerships),
        OPS: Principal(subject="ops-olga", role="ops"),
        APPLICANT: Principal(subject=APPLICANT_SUBJECT, role="applicant"),
        OTHER_APPLICANT: Principal(subject="applicant-piet", role="applicant"),
    }
    for name in REVIEWERS:
        tokens[reviewer_token(name)] = Principal(subject=panel_member(partnership_id, name), role="reviewer")
    return tokens


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def cancel(api: httpx.AsyncClient, partnership_id: str, application_id: str) -> None:
    """The officer cancels (as themself) an exchange a test no longer needs."""
    await api.post(
        f"/exchanges/{application_id}/updates/cancel",
        json={"actor_id": officer_of(partnership_id), "reason": "test finished"},
        headers=auth(OFFICER),
    )


def body(partnership_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid application of the partnership as plain JSON (what a caller in any language sends)."""
    app = application(**{"visitor_partnership_id": partnership_id, "host_partnership_id": partnership_id, **overrides})
    return app.model_dump(mode="json", exclude_none=True)


def stay_that_ended_weeks_ago(country: str, weeks: int = 3) -> tuple[date, date]:
    """A Monday-to-Friday stay with 5 working days that ended about `weeks` weeks ago (ADR 0004's way)."""
    monday = datetime.now(UTC).date() - timedelta(days=7 * weeks)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday -= timedelta(days=7)
    return monday, monday + timedelta(days=4)


def pdf(tag: str) -> bytes:
    """A small real PDF, unique per tag (evidence is stored by SHA-256 and checked on its whole structure)."""
    from tests.reporting.documents import pdf as real_pdf

    return real_pdf(f"evidence {tag}")


async def status_until(
    api: httpx.AsyncClient, token: str, application_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll GET /exchanges/{id} (real time, bounded) until `check` holds; fail naming the last status."""
    status: dict[str, Any] = {}
    for _ in range(int(WAIT_S / POLL_S)):
        answer = await api.get(f"/exchanges/{application_id}", headers=auth(token))
        if answer.status_code == 200:
            status = answer.json()
            if check(status):
                return status
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{application_id}: the awaited condition never held; last status {status}")


async def recorded(api: httpx.AsyncClient, token: str, application_id: str) -> None:
    """Poll (real time, bounded) until the read model holds the exchange: its explanation answers 200."""
    for _ in range(int(WAIT_S / POLL_S)):
        answer = await api.get(f"/exchanges/{application_id}/explanation", headers=auth(token))
        if answer.status_code == 200:
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"{application_id}: the read model never recorded the exchange")


async def stage_is(api: httpx.AsyncClient, token: str, application_id: str, stage: str) -> dict[str, Any]:
    return await status_until(api, token, application_id, lambda s: s["stage"] == stage)


async def open_reviewers(api: httpx.AsyncClient, token: str, application_id: str, count: int = 2) -> list[str]:
    """The ids of the reviewers assigned and open, once `count` of them are."""

    def assigned(status: dict[str, Any]) -> bool:
        assignments: list[dict[str, Any]] = (status.get("review") or {}).get("assignments", [])
        open_count = sum(1 for a in assignments if a["status"] == "open")
        return open_count >= count

    status = await status_until(api, token, application_id, assigned)
    return [a["reviewer_id"] for a in status["review"]["assignments"] if a["status"] == "open"]


async def listed(api: httpx.AsyncClient, token: str, count: int, **params: Any) -> dict[str, Any]:
    """Poll the list (real time, bounded) until the read model shows `count` rows in total."""
    for _ in range(int(WAIT_S / POLL_S)):
        answer = await api.get("/exchanges", params={"limit": 100, **params}, headers=auth(token))
        assert answer.status_code == 200, answer.text
        page: dict[str, Any] = answer.json()
        if len(page["items"]) >= count:
            return page
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"the read model never listed {count} rows for {params}")


def fields(answer: httpx.Response) -> list[str]:
    """The fields a problem document names (asserting it is one)."""
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    return [error["field"] for error in answer.json()["errors"]]


async def seed_over_http(api: httpx.AsyncClient, partnership_id: str, budget_cents: int) -> None:
    """What `make run` seeds, done by an officer over HTTP: the partnership, its review panel and its budget."""
    registered = await api.put(
        f"/partnerships/{partnership_id}", json={"name": f"Partnership {partnership_id}"}, headers=auth(OFFICER)
    )
    assert registered.status_code in (200, 201), registered.text
    for index, name in enumerate((*REVIEWERS, "officer")):
        person = {
            "reviewer_id": panel_member(partnership_id, name),
            "name": name,
            "organisation_id": f"org{index}-{partnership_id}",
            "country": "BE",
            "partnership_id": partnership_id,
            "roles": ["programme_officer" if name == "officer" else "reviewer"],
        }
        added = await api.post("/reviewers", json=person, headers=auth(OFFICER))
        assert added.status_code in (200, 201), added.text
    topped_up = await api.post(
        f"/partnerships/{partnership_id}/top-ups",
        json={"amount_cents": budget_cents, "reference": "initial-allocation"},
        headers=auth(OFFICER),
    )
    assert topped_up.status_code in (200, 201), topped_up.text


async def reviewed(api: httpx.AsyncClient, partnership_id: str, application_id: str) -> None:
    """Each assigned reviewer approves with their own token (scores 4 on every criterion)."""
    names = {panel_member(partnership_id, n): n for n in REVIEWERS}
    for member in await open_reviewers(api, OFFICER, application_id):
        done = await api.post(
            f"/exchanges/{application_id}/updates/submit_review",
            json=review(member),
            headers=auth(reviewer_token(names[member])),
        )
        assert done.status_code == 200, done.text
