"""Reviewers over HTTP: officers add them, each reviewer reads only their own inbox and sets their own holidays."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import MakeApi
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
    token_table,
)
from tests.workflows.conftest import REVIEWERS, panel_member


def reviewer(reviewer_id: str, partnership: str, organisation: str, **changes: object) -> dict[str, object]:
    return {
        "reviewer_id": reviewer_id,
        "name": reviewer_id.title(),
        "organisation_id": organisation,
        "country": "BE",
        "partnership_id": partnership,
        "roles": ["reviewer"],
        **changes,
    }


async def test_officers_add_reviewers_and_the_back_office_lists_them(make_api: MakeApi) -> None:
    """POST /reviewers adds (201) then updates (200); bad fields are named; only officers add, ops may list."""
    partnership = f"p-rev-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    anna = reviewer(f"anna-{partnership}", partnership, "org-1", conflicts=["org-b", "org-a"])
    added = await api.post("/reviewers", json=anna, headers=auth(OFFICER))
    assert added.status_code == 201, added.text
    assert added.json()["conflicts"] == ["org-a", "org-b"]
    assert added.json()["unavailable_until"] is None
    renamed = await api.post("/reviewers", json={**anna, "name": "Anna Berg"}, headers=auth(OFFICER))
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Anna Berg"
    bad = await api.post("/reviewers", json={**anna, "country": "be", "roles": []}, headers=auth(OFFICER))
    assert bad.status_code == 422
    assert set(fields(bad)) >= {"country", "roles"}
    as_service = await api.post("/reviewers", json=anna, headers=auth(SERVICE))
    assert as_service.status_code == 403
    listed = await api.get("/reviewers", params={"partnership": partnership}, headers=auth(OPS))
    assert listed.status_code == 200
    assert [(r["reviewer_id"], r["name"], r["open_load"]) for r in listed.json()] == [
        (anna["reviewer_id"], "Anna Berg", 0)
    ]
    assert (await api.get("/reviewers", headers=auth(APPLICANT))).status_code == 403


async def test_a_reviewer_reads_only_their_own_inbox(api: httpx.AsyncClient, partnership: str) -> None:
    """The assigned reviewers find the exchange in their inbox; another's inbox is 403, an unknown reviewer 404."""
    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(SERVICE))).status_code == 201
    app_id = data["application_id"]
    assigned = await open_reviewers(api, OFFICER, app_id)
    names = {panel_member(partnership, n): n for n in REVIEWERS}
    mine = assigned[0]
    own = await api.get(f"/reviewers/{mine}/inbox", headers=auth(reviewer_token(names[mine])))
    assert own.status_code == 200
    assert app_id in [item["application_id"] for item in own.json()]
    someone_else = next(member for member in names if member != mine)
    peeking = await api.get(f"/reviewers/{someone_else}/inbox", headers=auth(reviewer_token(names[mine])))
    assert peeking.status_code == 403
    assert fields(peeking) == ["reviewer_id"]
    officer_view = await api.get(f"/reviewers/{mine}/inbox", headers=auth(OFFICER))
    assert officer_view.status_code == 200
    assert officer_view.json() == own.json()
    unknown = await api.get("/reviewers/nobody-at-all/inbox", headers=auth(OFFICER))
    assert unknown.status_code == 404
    assert fields(unknown) == ["reviewer_id"]
    assert (await api.get(f"/reviewers/{mine}/inbox", headers=auth(APPLICANT))).status_code == 403
    await cancel(api, partnership, app_id)


async def test_unavailability_is_set_by_officers_or_by_the_reviewer_themself(
    api: httpx.AsyncClient, partnership: str
) -> None:
    """A reviewer sets and clears their own holiday; not someone else's; an officer sets anyone's."""
    me = panel_member(partnership, REVIEWERS[0])
    other = panel_member(partnership, REVIEWERS[1])
    token = reviewer_token(REVIEWERS[0])
    away = await api.put(f"/reviewers/{me}/unavailability", json={"until": "2031-08-31"}, headers=auth(token))
    assert away.status_code == 200
    assert away.json()["unavailable_until"] == "2031-08-31"
    back = await api.put(f"/reviewers/{me}/unavailability", json={"until": None}, headers=auth(token))
    assert back.status_code == 200
    assert back.json()["unavailable_until"] is None
    theirs = await api.put(f"/reviewers/{other}/unavailability", json={"until": "2031-08-31"}, headers=auth(token))
    assert theirs.status_code == 403
    by_officer = await api.put(f"/reviewers/{other}/unavailability", json={"until": None}, headers=auth(OFFICER))
    assert by_officer.status_code == 200
    bad_day = await api.put(f"/reviewers/{me}/unavailability", json={"until": "31/08/2031"}, headers=auth(OFFICER))
    assert bad_day.status_code == 422
    assert fields(bad_day) == ["until"]
    unknown = await api.put("/reviewers/nobody/unavailability", json={"until": None}, headers=auth(OFFICER))
    assert unknown.status_code == 404
