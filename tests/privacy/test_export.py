"""`cx privacy export` and ledger/privacy.py (issue 16, item 2): a person's rows, all of them and only theirs.

One exchange is driven through the real workflow (time-skipping server, real activities, real Postgres) to
PAID with people of its own: the applicant who submits it, uploads its evidence and reports, two reviewers,
four signatories, finance's confirmer. Rows that no workflow writes are planted beside it: web sessions, an
idempotency key, a notification e-mail. Then each person's export is compared with the database itself.
"""

from __future__ import annotations

import asyncio
import json
import stat
import tempfile
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.exit_codes import ExitCode
from ledger.evidence import store_evidence
from ledger.evidence_store import FileEvidenceStore
from ledger.privacy import PersonalDataExport, export_person, person_from
from ledger.web_sessions import open_session
from schemas.exchange import Party
from schemas.stages import Stage
from tests.api.helpers import pdf
from tests.clients.test_cli import cx
from tests.factories import application
from tests.workflows.conftest import Fund, assigned, result_of, review, until, wait_for_stage
from tests.workflows.conftest import funded_partnership as funded_partnership  # fixture
from tests.workflows.conftest import ledger_store as ledger_store  # fixture funded_partnership uses
from tests.workflows.conftest import ts_client as ts_client  # fixture: a worker on the time-skipping server


class People:
    """Everyone who acts on the test's exchange, with ids no other test uses."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.applicant = f"applicant-{tag}"
        self.applicant_email = f"applicant-{tag}@example.org"
        self.signers = {party: f"signer-{party.value}-{tag}" for party in Party}
        self.host_contact = f"host-contact-{tag}"
        self.visitor_contact = f"visitor-contact-{tag}"
        self.vop = f"vop-{tag}"
        self.finance = f"finance-{tag}"


async def drive_to_paid(
    client: ExchangeClient, env: WorkflowEnvironment, pool: asyncpg.Pool, partnership: str, people: People,
    goals: str = "", comment: str = "",
) -> tuple[str, list[str]]:  # fmt: skip
    """The exchange from submission to PAID, every act by one of `people` (the application's `goals` and the
    reviews' `comment` as given); its id and its reviewers."""
    app = application(
        visitor_partnership_id=partnership, host_partnership_id=partnership, submitted_by=people.applicant,
        goals=goals,
    )  # fmt: skip
    app_id = app.application_id
    await client.start_exchange(app)
    status = await assigned(client, app_id)
    assert status.review is not None
    reviewers = [a.reviewer_id for a in status.review.assignments if a.status == "open"]
    for reviewer_id in reviewers:
        await client.submit_review(app_id, {**review(reviewer_id), "comment": comment})
    await wait_for_stage(client, app_id, Stage.AGREEMENT)
    parties = (await client.status(app_id)).parties
    for party in Party:
        payload = {"actor_id": people.signers[party], "party": party.value, "on_behalf_of": parties[party]}
        await client.sign_commitment(app_id, payload)
    for side, party, actor in (
        ("host", Party.HOST_ORGANISATION, people.host_contact),
        ("visitor", Party.VISITOR_ORGANISATION, people.visitor_contact),
    ):
        await client.decide(app_id, "confirm_match", {"actor_id": actor, "side": side, "on_behalf_of": parties[party]})
    await until(client, app_id, lambda s: s.stage is not Stage.AGREEMENT, "a stage past AGREEMENT")
    await env.sleep(timedelta(days=40))  # past the stay: the durable travel timers fire
    await wait_for_stage(client, app_id, Stage.REPORTING)
    async with pool.acquire() as conn:
        item = await store_evidence(
            conn,
            FileEvidenceStore(Path(tempfile.gettempdir()) / "cx-test-evidence"),
            application_id=app_id,
            path_or_bytes=pdf(f"privacy {app_id}"),
            name="boarding-pass.pdf",
            kind="boarding_pass",
            uploaded_by=people.applicant,
        )
    report = {"actor_id": people.applicant, "summary": "Done.", "evidence": [item.model_dump()]}
    await client.submit_report(app_id, report)
    vop = parties[Party.VISITOR_PARTNERSHIP]
    await client.validate_report(app_id, {"actor_id": people.vop, "decision": "accept", "on_behalf_of": vop})
    status = await until(client, app_id, lambda s: s.payment_order_id is not None, "the payment order", within_s=30)
    assert status.payment_order_id is not None
    confirmation = {
        "payment_order_id": status.payment_order_id,
        "amount_cents": status.paid_cents,
        "payment_reference": f"SEPA-{app_id}",
        "confirmed_by": people.finance,
    }
    await client.confirm_payment(app_id, confirmation)
    assert (await result_of(client, app_id)).stage is Stage.PAID
    return app_id, reviewers


async def _plant(pool: asyncpg.Pool, people: People, reviewer: str, reviewer_email: str) -> None:
    """Rows no workflow writes: a web session each, the applicant's idempotency key, a mail to the reviewer."""
    for subject in (people.applicant, reviewer):
        await open_session(
            pool,
            id_sha256=uuid.uuid4().hex * 2,
            token_fingerprint=uuid.uuid4().hex * 2,
            subject=subject,
            csrf_token=uuid.uuid4().hex,
            lifetime=timedelta(hours=8),
        )
    await pool.execute(
        """INSERT INTO idempotency_keys (principal, key, route, resource_id, body_sha256)
           VALUES ($1, $2, 'POST /exchanges', '', $3)""",
        people.applicant,
        f"key-{uuid.uuid4().hex}",
        "0" * 64,
    )
    await pool.execute(
        """INSERT INTO outbox (dedup_key, topic, channel, destination, payload)
           VALUES ($1, 'notification', 'email', $2, '{"subject": "[ClusterXchange] review due"}'::jsonb)""",
        f"notify:privacy-test:{uuid.uuid4().hex}",
        reviewer_email.upper(),  # addresses match whatever their case
    )


# The database's own answer, written independently of ledger/privacy.py's SOURCES: (table, column, value).
def _truth_queries(ids: list[str], emails: list[str]) -> list[tuple[str, str, list[str]]]:
    return [
        ("reviewers", "reviewer_id", ids),
        ("review_assignments", "reviewer_id", ids),
        ("exchanges", "submitted_by", ids),
        ("audit_events", "actor_id", ids),
        ("evidence_files", "uploaded_by", ids),
        ("payment_orders", "confirmed_by", ids),
        ("web_sessions", "subject", ids),
        ("idempotency_keys", "principal", ids),
        ("outbox", "lower(destination)", [e.lower() for e in emails]),
        ("api_rate_counts", "bucket", [f"write:{i}" for i in ids]),
    ]


async def _truth(pool: asyncpg.Pool, ids: list[str], emails: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, column, values in _truth_queries(ids, emails):
        query = f"SELECT count(*) FROM {table} WHERE {column} = ANY($1::text[])"  # noqa: S608 (names are ours)
        count = await pool.fetchval(query, values)
        if count:
            counts[table] = count
    # System rows naming the person in their details (the reviewers_assigned row lists both reviewers).
    named = await pool.fetchval(
        """SELECT count(*) FROM audit_events WHERE actor_id <> ALL($1::text[])
             AND EXISTS (SELECT 1 FROM unnest($1::text[]) i WHERE details::text LIKE '%"' || i || '"%')""",
        ids,
    )
    if named:
        counts["audit_events"] = counts.get("audit_events", 0) + named
    return counts


def _by_source(document: PersonalDataExport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in document.items:
        counts[item.source] = counts.get(item.source, 0) + 1
    return counts


async def _export(pool: asyncpg.Pool, ids: Sequence[str], emails: Sequence[str] = ()) -> PersonalDataExport:
    async with pool.acquire() as conn:
        return await export_person(conn, person_from(ids, emails))


async def test_each_export_holds_every_row_of_its_person_and_nothing_of_another(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """For the applicant, a reviewer (by id and e-mail) and finance's confirmer, the export has exactly the rows
    that name them in each table (counted by the database independently), the ones the workflow wrote and the
    planted ones, system rows naming them in their details included; every row names its person, and no
    other person's id appears but in a row that names both (the reviewers' assignment)."""
    partnership = await funded_partnership(500_000)
    people = People()
    app_id, reviewers = await drive_to_paid(ts_client, time_skipping_env, pg_pool, partnership, people)
    reviewer, other_reviewer = reviewers[0], reviewers[1]
    reviewer_email = f"{reviewer}@example.org"
    await _plant(pg_pool, people, reviewer, reviewer_email)

    applicant = await _export(pg_pool, [people.applicant], [people.applicant_email])
    as_reviewer = await _export(pg_pool, [reviewer], [reviewer_email])
    finance = await _export(pg_pool, [people.finance])

    assert _by_source(applicant) == await _truth(pg_pool, [people.applicant, people.applicant_email], [])
    assert set(_by_source(applicant)) == {
        "exchanges",
        "audit_events",
        "evidence_files",
        "web_sessions",
        "idempotency_keys",
    }
    assert _by_source(as_reviewer) == await _truth(pg_pool, [reviewer, reviewer_email], [reviewer_email])
    assert set(_by_source(as_reviewer)) == {"reviewers", "review_assignments", "audit_events", "web_sessions", "outbox"}
    assert _by_source(finance) == await _truth(pg_pool, [people.finance], [])
    assert set(_by_source(finance)) == {"payment_orders", "audit_events"}

    (submitted,) = [i.row for i in applicant.items if i.source == "exchanges"]
    assert (submitted["application_id"], submitted["stage"]) == (app_id, "PAID")
    (evidence,) = [i.row for i in applicant.items if i.source == "evidence_files"]
    assert set(evidence) >= {"sha256", "name", "size_bytes", "uploaded_by"}  # the record, never the bytes
    (session,) = [i.row for i in applicant.items if i.source == "web_sessions"]
    assert set(session) == {"subject", "created_at", "expires_at"}  # no CSRF token, no session id hash

    # Every row names its person; a row naming nobody else but them belongs in no other person's document.
    for document, own in ((applicant, people.applicant), (as_reviewer, reviewer), (finance, people.finance)):
        assert all(own.lower() in json.dumps(item.row).lower() for item in document.items), (
            f"{own}'s export has a row not naming them"
        )
    (shared,) = [i.row for i in as_reviewer.items if i.source == "audit_events" and i.row["actor_id"] == "system"]
    assert shared["event"] == "reviewers_assigned"  # names both reviewers: in each one's export
    everyone = {people.applicant, reviewer, other_reviewer, people.finance, people.vop, *people.signers.values()}
    for document, own in ((applicant, people.applicant), (finance, people.finance)):
        text = json.dumps([item.row for item in document.items])
        strangers = sorted(p for p in everyone - {own} if p in text)
        assert strangers == [], f"{own}'s export names {strangers}"
    reviewer_text = json.dumps([i.row for i in as_reviewer.items if i.row is not shared])
    assert other_reviewer not in reviewer_text
    assert people.applicant not in reviewer_text


async def test_the_command_writes_the_document_for_its_owner_only(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool,
    database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """`cx privacy export <id> --output FILE` writes the same rows as the library, in a file only its owner can
    read; stdout without --output; a person on record nowhere is an empty document (exit 0); an identifier with
    a space is refused naming it (exit 2), and so is no identifier at all."""
    partnership = await funded_partnership(500_000)
    people = People()
    app_id, _ = await drive_to_paid(ts_client, time_skipping_env, pg_pool, partnership, people)
    env = {"DATABASE_URL": database_url}
    target = tmp_path / "export.json"

    written = await asyncio.to_thread(cx, "privacy", "export", people.applicant, "--output", str(target), env=env)
    assert written.returncode == ExitCode.OK, written.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    from_file = PersonalDataExport.model_validate_json(target.read_text())
    expected = await _export(pg_pool, [people.applicant])
    assert [i.model_dump() for i in from_file.items] == [i.model_dump() for i in expected.items]
    assert any(i.source == "exchanges" and i.row["application_id"] == app_id for i in from_file.items)

    printed = await asyncio.to_thread(cx, "privacy", "export", people.applicant, env=env)
    assert printed.returncode == ExitCode.OK, printed.stderr
    assert json.loads(printed.stdout)["items"] == json.loads(target.read_text())["items"]

    nobody = await asyncio.to_thread(cx, "privacy", "export", f"nobody-{uuid.uuid4().hex}", env=env)
    assert nobody.returncode == ExitCode.OK, nobody.stderr
    assert json.loads(nobody.stdout)["items"] == []

    for refused_args in (("two words",), ()):
        refused = await asyncio.to_thread(cx, "privacy", "export", *refused_args, env=env)
        assert refused.returncode == ExitCode.USAGE, refused.stdout
        assert refused.stderr.startswith("error:"), refused.stderr
        assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("ids", "emails", "field"),
    [([], [], "name the person"), (["tab\there"], [], "ids.0"), ([], ["not-an-address"], "emails.0")],
)
def test_a_person_is_named_by_well_formed_identifiers(ids: list[str], emails: list[str], field: str) -> None:
    """No identifier, one with a control character, or an address without @ is refused naming the field."""
    with pytest.raises(ValueError, match=field):
        person_from(ids, emails)


def test_an_identifier_with_an_at_sign_is_also_an_address() -> None:
    """`cx privacy export anna@example.org` finds her mail as well as the rows where the address is her actor id."""
    person = person_from(["Anna@Example.org"], [])
    assert person.actor_ids() == ["Anna@Example.org"]
    assert person.addresses() == ["anna@example.org"]
