"""Erasure when the retention periods end (issue 16, item 2; ledger/expiry.py, `cx privacy expire`).

On the time-skipping server: one exchange is cancelled (closed today), another stays open in review. Nobody
is due today; ten years and a day later the cancelled exchange's applicant and officer are, the open one's
applicant is not, nor its reviewers (those only on the closed one are); a reviewer never assigned is due a year after
their record changed. Erased, a person is no longer listed (only pseudonyms remain).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.erasure import erase
from clients.exit_codes import ExitCode
from ledger.expiry import due_for_erasure
from ledger.review import add_reviewer
from schemas.retention import Category, retention_schedule
from schemas.review import Reviewer
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application
from tests.workflows.conftest import Fund, assigned, wait_for_stage
from tests.workflows.conftest import funded_partnership as funded_partnership  # fixture
from tests.workflows.conftest import ledger_store as ledger_store  # fixture funded_partnership uses
from tests.workflows.conftest import ts_client as ts_client  # fixture: a worker on the time-skipping server


async def due_people(pool: asyncpg.Pool, today: date) -> dict[str, Category]:
    async with pool.acquire() as conn:
        return {d.person: d.category for d in await due_for_erasure(conn, retention_schedule(), today)}


async def test_people_are_due_when_every_period_has_ended_and_never_while_an_exchange_is_open(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool,
    database_url: str,
) -> None:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    closed_by, open_by, officer = f"applicant-c-{tag}", f"applicant-o-{tag}", f"officer-{tag}"
    partnership = await funded_partnership(500_000)
    closed = application(visitor_partnership_id=partnership, host_partnership_id=partnership, submitted_by=closed_by)
    still_open = application(visitor_partnership_id=partnership, host_partnership_id=partnership, submitted_by=open_by)
    for app in (closed, still_open):
        await ts_client.start_exchange(app)
        await assigned(ts_client, app.application_id)
    await ts_client.cancel(closed.application_id, {"actor_id": officer, "reason": "withdrawn by phone"})
    await wait_for_stage(ts_client, closed.application_id, Stage.CANCELLED)
    panels = [{r["reviewer_id"] for r in await pg_pool.fetch(
        "SELECT reviewer_id FROM review_assignments WHERE application_id = $1", app.application_id)}
        for app in (closed, still_open)]  # fmt: skip
    panel = panels[0] | panels[1]
    idle = f"rev-idle-{tag}"
    async with pg_pool.acquire() as conn:
        await add_reviewer(conn, Reviewer.model_validate(
            {"reviewer_id": idle, "name": "Idle Person", "organisation_id": f"org-{tag}", "country": "BE",
             "partnership_id": partnership, "roles": ["reviewer"]}))  # fmt: skip

    today = datetime.now(UTC).date()
    now_due = await due_people(pg_pool, today)
    assert not {closed_by, open_by, officer, idle, *panel} & set(now_due)
    in_a_year = await due_people(pg_pool, today + timedelta(days=367))
    assert in_a_year.get(idle) is Category.REVIEWER_CONTACT_DATA
    assert closed_by not in in_a_year
    later = await due_people(pg_pool, today + timedelta(days=3653 + 2))
    assert later.get(closed_by) in (Category.APPLICATIONS, Category.AUDIT_TRAIL)
    assert officer in later
    assert open_by not in later, "party to an open exchange"
    assert not panels[1] & set(later), "a reviewer on the open exchange is party to it"
    assert panels[0] - panels[1] <= set(later), "a reviewer only on the closed exchange is due"

    env = {"DATABASE_URL": database_url}
    on = (today + timedelta(days=3653 + 2)).isoformat()
    listed = await asyncio.to_thread(cx, "privacy", "expire", "--dry-run", "--on", on, env=env)
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert closed_by in listed.stdout
    assert open_by not in listed.stdout
    refused = await asyncio.to_thread(cx, "privacy", "expire", "--by", "dpo", "--on", on, env=env)
    assert refused.returncode == ExitCode.USAGE, refused.stdout
    assert "--dry-run" in refused.stderr
    assert (await asyncio.to_thread(cx, "privacy", "expire", env=env)).returncode == ExitCode.USAGE  # no --by

    report = await erase(pg_pool, time_skipping_env.client, [closed_by], [], "dpo", "retention: applications")
    assert report.erasure.person_ref is not None
    after = await due_people(pg_pool, today + timedelta(days=3653 + 2))
    assert closed_by not in after
    assert report.erasure.person_ref not in after, "a pseudonym is never due again"
    await ts_client.cancel(still_open.application_id, {"actor_id": officer, "reason": "test over"})
