"""Erasure that keeps the money trail (issue 16, item 2; ledger/erasure.py, clients/erasure.py).

A traveller's name and contact address are planted in an application's goals, the reviewers' comments and
an officer's cancellation reason; a reviewer's record carries a planted name. Then the applicant, the
reviewers and the officer are erased, and:

- no table of the database holds a planted string or an erased person's id (a scan of every row's text);
- no Temporal history does, decoded with the programme's keys: the exchange's is deleted, and every other
  workflow of the test is scanned payload by payload (the dev server; the time-skipping server cannot
  delete, which the erasure reports);
- no log line written meanwhile does;
- the ledger check passes and the money figures (balances, the exchange's stage and amounts) are unchanged,
  with a PAID exchange too;
- the timeline and the reviewer list read "erased" where the words were; a repeat changes nothing; a person
  still party to an open exchange is refused and keeps their key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.erasure import ErasureReport, erase
from ledger.checks import check_ledger
from ledger.erasure import PersonStillParty
from ledger.kpis import programme_kpis
from ledger.oversight import timeline
from ledger.persons import ERASED, find_person, reveal
from ledger.review import add_reviewer, get_reviewer
from ledger.store import LedgerStore
from schemas.ids import exchange_workflow_id
from schemas.review import Reviewer
from schemas.stages import Stage
from tests.factories import application
from tests.privacy.test_export import People, drive_to_paid
from tests.workflows.conftest import Fund, assigned, review, wait_for_stage
from tests.workflows.conftest import dev_client as dev_client  # fixture: a worker on the dev server
from tests.workflows.conftest import funded_partnership as funded_partnership  # fixture
from tests.workflows.conftest import ledger_store as ledger_store  # fixture funded_partnership uses
from tests.workflows.conftest import ts_client as ts_client  # fixture: a worker on the time-skipping server

DPO = "dpo-erasure-test"


def planted() -> tuple[str, str, str]:
    """A traveller's name, their contact address, a reviewer's name: unique to this run."""
    tag = uuid.uuid4().hex[:8]
    return f"Wenceslas Qyz{tag}", f"w.qyz{tag}@contact.example", f"Ottilie Vrx{tag}"


async def rows_holding(pool: asyncpg.Pool, text: str) -> dict[str, int]:
    """Every table of the database whose rows' text holds `text` (case-insensitive), with how many rows."""
    tables = await pool.fetch(
        "SELECT quote_ident(table_name) AS name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    found: dict[str, int] = {}
    for table in tables:
        query = f"SELECT count(*) FROM {table['name']} t WHERE strpos(lower(t::text), lower($1)) > 0"  # noqa: S608
        if count := await pool.fetchval(query, text):
            found[table["name"]] = count
    return found


async def decoded_text(client: Client, message: Message) -> str:
    """The message with every payload in it decoded by the client's codec, as text to search."""
    parts: list[str] = []
    codec = client.data_converter.payload_codec
    stack: list[Message] = [message]
    while stack:
        node = stack.pop()
        if isinstance(node, Payload):
            [plain] = await codec.decode([node]) if codec else [node]
            parts.append(plain.data.decode(errors="replace"))
            continue
        for field, value in node.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                stack.extend(v for v in value.values() if isinstance(v, Message))
            elif isinstance(value, Message):
                stack.append(value)
            else:  # a repeated field
                stack.extend(value)
    return "\n".join(parts)


async def histories_holding(client: Client, since: datetime, texts: tuple[str, ...]) -> list[str]:
    """The workflows started since `since` whose decoded history holds one of `texts`."""
    holding: list[str] = []
    query = f'StartTime >= "{since.isoformat()}"'
    async for execution in client.list_workflows(query):
        history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
        text = "\n".join([await decoded_text(client, event) for event in history.events])
        holding.extend(f"{execution.id}: {t}" for t in texts if t in text)
    return holding


async def gone(client: Client, workflow_id: str, within_s: float = 120) -> bool:
    """Whether the workflow's history is deleted within the time (the dev server deletes a closed workflow's
    history in a background task, about 30 s after the request)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            await client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return True
            raise
        await asyncio.sleep(0.5)
    return False


async def money_of(pool: asyncpg.Pool, partnership: str, application_id: str) -> tuple[Any, ...]:
    """The partnership's balance, the exchange's stage and amounts, its ledger entries and payment order."""
    balances = [b for b in await LedgerStore(pool).partnership_balances() if b.partnership_id == partnership]
    exchange = await pool.fetchrow(
        "SELECT stage, grant_cents, held_cents, paid_cents, start_date, end_date, visitor_org_id, host_org_id "
        "FROM exchanges WHERE application_id = $1",
        application_id,
    )
    entries = await pool.fetch(
        """SELECT t.id, t.kind, t.amount_cents, e.account_id, e.debits_posted, e.credits_posted, e.debits_pending,
                  e.credits_pending FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
            WHERE strpos(t.idempotency_key, $1) > 0 ORDER BY t.id, e.account_id""",
        application_id,
    )
    order = await pool.fetchrow(
        "SELECT amount_cents, payment_reference, confirmed_at FROM payment_orders WHERE application_id = $1",
        application_id,
    )
    events = await pool.fetch(
        "SELECT sequence, event, stage, at, policy_version FROM audit_events WHERE application_id = $1 ORDER BY 1",
        application_id,
    )
    return (balances, dict(exchange or {}), [dict(e) for e in entries], dict(order or {}), [dict(e) for e in events])


async def kpis_of(pool: asyncpg.Pool, partnership: str) -> list[dict[str, Any]]:
    """The Commission's KPIs of the partnership (ledger/kpis.py), over every day the test could touch."""
    today = datetime.now(UTC).date()
    report = await programme_kpis(pool, today - timedelta(days=400), today + timedelta(days=400))
    return [p.model_dump() for p in report.partnerships if p.partnership_id == partnership]


async def erase_all(pool: asyncpg.Pool, client: Client, people: list[str]) -> list[ErasureReport]:
    return [await erase(pool, client, [person], [], DPO, "request DPO-TEST-1") for person in people]


async def cancelled_exchange(
    client: ExchangeClient, pool: asyncpg.Pool, partnership: str, names: tuple[str, str, str], people: dict[str, str]
) -> tuple[str, list[str]]:
    """An exchange reviewed with the planted words and cancelled by an officer; its id and its reviewers."""
    traveller, contact, reviewer_name = names
    app = application(
        visitor_partnership_id=partnership,
        host_partnership_id=partnership,
        submitted_by=people["applicant"],
        goals=f"{traveller} (contact {contact}) learns how the host runs its clean-room.",
    )
    await client.start_exchange(app)
    status = await assigned(client, app.application_id)
    assert status.review is not None
    reviewers = [a.reviewer_id for a in status.review.assignments if a.status == "open"]
    async with pool.acquire() as conn:
        record = await get_reviewer(conn, reviewers[0])
        assert record is not None
        await add_reviewer(conn, Reviewer.model_validate({**record.model_dump(), "name": reviewer_name}))
    for reviewer_id in reviewers:
        comment = {"comment": f"{traveller} has a clear agenda; write to {contact}."}
        await client.submit_review(app.application_id, review(reviewer_id) | comment)
    await wait_for_stage(client, app.application_id, Stage.AGREEMENT)
    reason = f"{traveller} cannot travel; contact {contact}"
    await client.cancel(app.application_id, {"actor_id": people["officer"], "reason": reason})
    await wait_for_stage(client, app.application_id, Stage.CANCELLED)
    return app.application_id, reviewers


@pytest.mark.timeout(240)
async def test_after_erasure_no_table_history_or_log_names_the_person_and_the_money_is_unchanged(
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    funded_partnership: Fund,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    started = datetime.now(UTC)
    names = planted()
    tag = uuid.uuid4().hex[:8]
    people = {"applicant": f"applicant-{tag}", "officer": f"officer-{tag}"}
    partnership = await funded_partnership(500_000)
    app_id, reviewers = await cancelled_exchange(dev_client, pg_pool, partnership, names, people)
    temporal = dev_client.temporal
    erased_ids = (people["applicant"], people["officer"], *reviewers)
    for text in erased_ids:
        assert await rows_holding(pg_pool, text), f"{text!r}: the ids are in clear before erasure"
    for text in names:  # the words are sealed at rest, yet open for whoever reads them through the engine
        assert await rows_holding(pg_pool, text) == {}, f"{text!r} stored in clear"
    async with pg_pool.acquire() as conn:
        readable = json.dumps([e.model_dump(mode="json") for e in await timeline(conn, app_id) or []])
        named = await get_reviewer(conn, reviewers[0])
    assert names[0] in readable
    assert names[1] in readable
    assert named is not None
    assert named.name == names[2]
    assert await histories_holding(temporal, started, names), "the scan finds the words before erasure"
    ledger_before = await check_ledger(pg_pool)
    money_before = await money_of(pg_pool, partnership, app_id)

    reports = await erase_all(pg_pool, temporal, list(erased_ids))

    first = reports[0]
    assert first.erasure.person_ref is not None
    assert first.erasure.keys_destroyed == 1
    assert first.histories_deleted == [exchange_workflow_id(app_id)]
    assert not first.histories_kept
    assert await gone(temporal, exchange_workflow_id(app_id))
    for text in (*names, *erased_ids):
        assert await rows_holding(pg_pool, text) == {}, f"{text!r} still in the database"
    assert await histories_holding(temporal, started, (*names, *erased_ids)) == []
    logs = [repr(record.__dict__) for record in caplog.records]
    assert any(app_id in line for line in logs), "the worker's log lines of this exchange were captured"
    for text in names:
        assert not [line for line in logs if text in line], f"{text!r} in a log line"

    assert await money_of(pg_pool, partnership, app_id) == money_before
    after = await check_ledger(pg_pool)
    assert [c.breaches for c in after.checks] == [c.breaches for c in ledger_before.checks]
    async with pg_pool.acquire() as conn:
        events = await timeline(conn, app_id)
        assert events is not None
        by_event = {e.event: e for e in events}
        assert by_event["review_submitted"].reason == ERASED
        assert by_event["review_submitted"].actor_id.startswith("psn_")
        renamed = await get_reviewer(conn, reports[2].erasure.person_ref or "")
    assert renamed is not None
    assert renamed.name == ERASED

    digest = await pg_pool.fetchval("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM audit_events t")
    again = await erase_all(pg_pool, temporal, [people["applicant"]])
    assert again[0].erasure.already_erased
    assert again[0].erasure.person_ref is None
    assert await pg_pool.fetchval("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM audit_events t") == digest


async def test_a_person_party_to_an_open_exchange_is_refused_and_keeps_everything(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, funded_partnership: Fund
) -> None:
    applicant = f"applicant-{uuid.uuid4().hex[:8]}"
    partnership = await funded_partnership(500_000)
    app = application(
        visitor_partnership_id=partnership, host_partnership_id=partnership, submitted_by=applicant, goals="Mine."
    )
    await dev_client.start_exchange(app)
    await assigned(dev_client, app.application_id)
    before = await rows_holding(pg_pool, applicant)
    with pytest.raises(PersonStillParty, match=app.application_id):
        await erase(pg_pool, dev_client.temporal, [applicant], [], DPO, "request DPO-TEST-2")
    assert await rows_holding(pg_pool, applicant) == before
    async with pg_pool.acquire() as conn:
        ref = await find_person(conn, applicant)
        assert ref is not None, "the applicant is still known by their id"
        key = await conn.fetchrow("SELECT wrapped_key, destroyed_at FROM person_keys WHERE person_ref = $1", ref)
        stored = await conn.fetchval("SELECT application->>'goals' FROM exchanges WHERE application_id = $1",
                                     app.application_id)  # fmt: skip
        assert await reveal(conn, stored) == "Mine."  # sealed, and still opens
    assert key is not None
    assert key["wrapped_key"] is not None
    assert key["destroyed_at"] is None
    assert stored.startswith("cx1:psn_")
    await dev_client.cancel(app.application_id, {"actor_id": "officer-olga", "reason": "test over"})


@pytest.mark.timeout(240)
async def test_a_paid_exchange_keeps_its_money_trail_after_everyone_is_erased(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    traveller, contact, _ = planted()
    people = People()
    partnership = await funded_partnership(500_000)
    app_id, reviewers = await drive_to_paid(
        ts_client, time_skipping_env, pg_pool, partnership, people,
        goals=f"{traveller} ({contact}) visits.", comment=f"{traveller} is well prepared.",
    )  # fmt: skip
    money_before = await money_of(pg_pool, partnership, app_id)
    kpis_before = await kpis_of(pg_pool, partnership)
    assert kpis_before[0]["paid"] == 1
    assert money_before[1]["stage"] == Stage.PAID.value
    assert money_before[3]["payment_reference"]
    everyone = [people.applicant, people.finance, people.vop, *reviewers, *people.signers.values()]
    everyone += [people.host_contact, people.visitor_contact]

    reports = await erase_all(pg_pool, time_skipping_env.client, everyone)

    # Temporal's test server cannot delete a history: the erasure says so, and the retention will.
    assert "cannot delete" in reports[0].histories_kept[exchange_workflow_id(app_id)]
    for text in (traveller, contact, *everyone):
        assert await rows_holding(pg_pool, text) == {}, f"{text!r} still in the database"
    assert await money_of(pg_pool, partnership, app_id) == money_before
    assert await kpis_of(pg_pool, partnership) == kpis_before
    assert all(not c.breaches for c in (await check_ledger(pg_pool)).checks)
    confirmed_by = await pg_pool.fetchval("SELECT confirmed_by FROM payment_orders WHERE application_id = $1", app_id)
    assert confirmed_by.startswith("psn_")  # who confirmed stays provable, not nameable
