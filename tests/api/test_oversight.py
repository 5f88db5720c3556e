"""The back office's oversight over HTTP (issue 14): counts, waitlists in FIFO order, stuck exchanges, timelines,
payment orders and the bulk import of applications with its per-row report."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from clients.import_commands import CSV_COLUMNS
from schemas.stages import Stage
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
    officer_of,
    stage_is,
    token_table,
)
from tests.factories import application, project


def csv_of(rows: list[dict[str, Any]]) -> bytes:
    """Applications (as JSON bodies) written as `cx import`'s CSV: organisations' fields as visitor_/host_ columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = {k: v for k, v in row.items() if k not in ("visitor", "host")}
        for side in ("visitor", "host"):
            flat |= {f"{side}_{name}": value for name, value in row[side].items()}
        writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in flat.items()})
    return out.getvalue().encode()


async def import_file(api: httpx.AsyncClient, token: str, name: str, data: bytes) -> httpx.Response:
    return await api.post("/imports", files={"file": (name, data, "text/csv")}, headers=auth(token))


async def test_counts_waitlist_and_stuck_read_the_read_model(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """Two waitlisted exchanges are listed oldest first; a quiet one with no deadline ahead is stuck, a quiet
    one waiting for a deadline still to come is not; the counts count each in its stage; applicants are refused."""
    partnership = f"p-over-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    now = datetime.now(UTC)
    first, second, quiet, waiting = (application(visitor_partnership_id=partnership) for _ in range(4))
    await project(pg_pool, second, Stage.WAITLISTED, at=now - timedelta(hours=1), grant_cents=50_000)
    await project(pg_pool, first, Stage.WAITLISTED, at=now - timedelta(hours=2), grant_cents=95_000)
    await project(pg_pool, quiet, Stage.REPORTING, at=now - timedelta(days=30))
    await project(pg_pool, waiting, Stage.TRAVEL, at=now - timedelta(days=30), next_deadline=now + timedelta(days=9))

    line = await api.get(f"/partnerships/{partnership}/waitlist", headers=auth(OPS))
    assert line.status_code == 200, line.text
    assert [(w["position"], w["application_id"]) for w in line.json()] == [
        (1, first.application_id),
        (2, second.application_id),
    ]
    assert line.json()[0]["grant_cents"] == 95_000

    stuck = await api.get("/stuck-exchanges", params={"quiet_days": 20}, headers=auth(OFFICER))
    assert stuck.status_code == 200, stuck.text
    found = {row["application_id"]: row for row in stuck.json()}
    assert quiet.application_id in found
    assert found[quiet.application_id]["quiet_days"] >= 29
    assert waiting.application_id not in found, "a deadline ahead: waiting as designed"
    assert first.application_id not in found, "recorded an hour ago"
    assert (await api.get("/stuck-exchanges", params={"quiet_days": 0}, headers=auth(OPS))).status_code == 422

    counts = await api.get("/exchange-counts", headers=auth(OPS))
    mine = {(c["stage"]): c["count"] for c in counts.json() if c["partnership_id"] == partnership}
    assert mine == {"WAITLISTED": 2, "REPORTING": 1, "TRAVEL": 1}
    for path in ("/exchange-counts", f"/partnerships/{partnership}/waitlist", "/stuck-exchanges", "/payment-orders"):
        assert (await api.get(path, headers=auth(APPLICANT))).status_code == 403, path


async def test_the_timeline_is_the_audit_trail_for_officers_and_ops_only(
    make_api: MakeApi, pg_pool: asyncpg.Pool, partnership: str
) -> None:
    """An officer's cancel shows in the timeline with its actor and reason; ops read it; an applicant who submitted
    the exchange is refused (need to know); an unknown exchange is 404."""
    from tests.workflows.conftest import add_review_panel

    await add_review_panel(pg_pool, partnership)
    api = make_api(token_table(partnership))
    data = body(partnership)
    assert (await api.post("/exchanges", json=data, headers=auth(SERVICE))).status_code == 201
    app_id = data["application_id"]
    await cancel(api, partnership, app_id)
    await stage_is(api, OFFICER, app_id, "CANCELLED")
    events: list[dict[str, Any]] = []
    for _ in range(200):  # the projection of the cancel may trail the update's answer by a moment
        events = (await api.get(f"/exchanges/{app_id}/timeline", headers=auth(OPS))).json()
        if any(e["stage"] == "CANCELLED" for e in events):
            break
        await asyncio.sleep(0.05)
    cancelled = [e for e in events if e["stage"] == "CANCELLED" and e["event"] == "stage_entered"]
    assert cancelled, events
    assert cancelled[0]["reason"] == "test finished"
    assert cancelled[0]["actor_id"] == officer_of(partnership)
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    refused = await api.get(f"/exchanges/{app_id}/timeline", headers=auth(APPLICANT))
    assert refused.status_code == 403
    unknown = await api.get("/exchanges/app-nobody-knows/timeline", headers=auth(OFFICER))
    assert unknown.status_code == 404


async def test_payment_orders_answer_with_their_state(make_api: MakeApi, pg_pool: asyncpg.Pool) -> None:
    """An order recorded 30 days ago and never confirmed is overdue; the partnership filter is checked at the door."""
    partnership = f"p-pay-{uuid.uuid4().hex[:8]}"
    api = make_api(token_table(partnership))
    app_id = f"app-pay-{uuid.uuid4().hex[:8]}"
    await pg_pool.execute(
        """INSERT INTO payment_orders (payment_order_id, application_id, partnership_id, amount_cents, hold_id,
                                       post_transfer_id, payout_transfer_id, created_at)
           VALUES ($1, $2, $3, 95000, 1, 2, 3, now() - interval '30 days')""",
        f"po-{app_id}",
        app_id,
        partnership,
    )
    orders = await api.get("/payment-orders", params={"partnership": partnership}, headers=auth(OPS))
    assert orders.status_code == 200, orders.text
    assert [(o["payment_order_id"], o["state"], o["amount_cents"]) for o in orders.json()] == [
        (f"po-{app_id}", "overdue", 95_000)
    ]
    assert (await api.get("/payment-orders", params={"partnership": "bad id!"}, headers=auth(OPS))).status_code == 422


async def test_an_import_starts_good_rows_once_and_names_each_bad_rows_line_and_field(
    make_api: MakeApi, pg_pool: asyncpg.Pool, partnership: str
) -> None:
    """Row 1 starts, row 2 (line 3) is refused naming visitor.country and its column; the same file again starts
    nothing; a row reusing an id for another application is a conflict; a programme service may not set an
    officer field; ops may not import; a file with an unknown column is refused whole (422 naming `file`)."""
    from tests.workflows.conftest import add_review_panel

    await add_review_panel(pg_pool, partnership)
    api = make_api(token_table(partnership))
    good, bad = body(partnership), body(partnership)
    bad["visitor"]["country"] = "Poland"
    data = csv_of([good, bad])
    first = await import_file(api, OFFICER, "applications.csv", data)
    assert first.status_code == 200, first.text
    rows = first.json()["rows"]
    assert [(r["line"], r["outcome"]) for r in rows] == [(2, "started"), (3, "refused")]
    assert {"field": "visitor.country", "column": "visitor_country"}.items() <= rows[1]["errors"][0].items()
    await stage_is(api, OFFICER, good["application_id"], "REVIEW")

    again = await import_file(api, OFFICER, "applications.csv", data)
    assert again.json()["counts"] == {"started": 0, "already started": 1, "refused": 1, "conflict": 0}
    changed = {**good, "goals": "Something else entirely for this exchange."}
    conflict = await import_file(api, OFFICER, "changed.csv", csv_of([changed]))
    assert conflict.json()["rows"][0]["outcome"] == "conflict"
    assert "goals" in conflict.json()["rows"][0]["errors"][0]["message"]

    officer_field = {**body(partnership), "submitted_at": "2026-01-05T09:00:00Z"}
    by_service = await import_file(api, SERVICE, "service.csv", csv_of([officer_field]))
    assert by_service.status_code == 200, by_service.text
    assert by_service.json()["rows"][0]["outcome"] == "refused"
    assert by_service.json()["rows"][0]["errors"][0]["field"] == "submitted_at"
    assert (await import_file(api, OPS, "ops.csv", data)).status_code == 403
    unknown_column = await import_file(api, OFFICER, "odd.csv", b"application_id,colour\nx,blue\n")
    assert unknown_column.status_code == 422
    assert fields(unknown_column) == ["file"]
    await cancel(api, partnership, good["application_id"])
