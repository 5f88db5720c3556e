"""`cx reviewers ...` and `cx review inbox` as subprocesses against a real Postgres: records validated
with the field named, one-line errors with the exit codes of clients/exit_codes.py (never a traceback),
open loads, holidays, inbox order."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from ledger.review import update as update_assignment
from schemas.review import AssignmentStatus, UpdateAssignmentInput
from tests.clients.test_cli import cx


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one error line; `code` from clients/exit_codes.py (2 USAGE by default, 3 NOT_FOUND, 5 UNAVAILABLE)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


def add_args(reviewer_id: str, partnership: str, *extra: str, country: str = "DE") -> list[str]:
    return [
        "reviewers",
        "add",
        "--id",
        reviewer_id,
        "--name",
        "Anna Berg",
        "--organisation",
        f"org-{reviewer_id}",
        "--country",
        country,
        "--partnership",
        partnership,
        *extra,
    ]


def test_reviewers_add_list_and_update(database_url: str) -> None:
    """Adding creates a record, adding the same id again updates it, and the list shows roles, conflicts
    and open load per partnership."""
    env = {"DATABASE_URL": database_url}
    tag = uuid.uuid4().hex[:8]
    partnership, anna, olaf = f"P-{tag}", f"anna-{tag}", f"olaf-{tag}"

    added = cx(*add_args(anna, partnership, "--role", "reviewer", "--conflict", "org-x"), env=env)
    assert added.returncode == 0, added.stderr
    assert f"added reviewer {anna}" in added.stdout, added.stderr
    officer = ["--role", "programme_officer", "--role", "reviewer"]
    assert cx(*add_args(olaf, partnership, *officer), env=env).returncode == 0
    updated = cx(*add_args(anna, partnership, "--role", "reviewer", "--conflict", "org-y", country="SE"), env=env)
    assert updated.returncode == 0
    assert f"updated reviewer {anna}" in updated.stdout

    listed = cx("reviewers", "list", "--partnership", partnership, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [r["reviewer_id"] for r in records] == [anna, olaf]
    assert records[0] == {
        "reviewer_id": anna,
        "name": "Anna Berg",
        "organisation_id": f"org-{anna}",
        "country": "SE",
        "partnership_id": partnership,
        "roles": ["reviewer"],
        "conflicts": ["org-y"],
        "unavailable_until": None,
        "open_load": 0,
    }
    assert records[1]["roles"] == ["programme_officer", "reviewer"]

    table = cx("reviewers", "list", "--partnership", partnership, env=env)
    assert table.returncode == 0
    assert anna in table.stdout
    assert "programme_officer, reviewer" in table.stdout


async def test_reviewers_add_refuses_bad_values_naming_the_field(database_url: str, pg_pool: asyncpg.Pool) -> None:
    """A bad country or a missing role is refused in one line naming the field and option; nothing is written."""
    env = {"DATABASE_URL": database_url}
    reviewer_id = f"bad-{uuid.uuid4().hex[:8]}"

    error = one_line_error(cx(*add_args(reviewer_id, "P1", "--role", "reviewer", country="Germany"), env=env))
    assert "country (--country)" in error
    error = one_line_error(cx(*add_args(reviewer_id, "P1", "--role", "auditor"), env=env))
    assert "'--role'" in error
    assert "'auditor' is not one of" in error
    error = one_line_error(cx(*add_args(reviewer_id, "P1"), env=env))
    assert "roles (--role)" in error

    assert await pg_pool.fetchval("SELECT count(*) FROM reviewers WHERE reviewer_id = $1", reviewer_id) == 0


async def test_set_unavailable_until_a_day_and_clear(database_url: str, pg_pool: asyncpg.Pool) -> None:
    """--until records the last day away, --clear makes the reviewer available; an unknown id, both or
    neither option, or a malformed day are one-line errors."""
    env = {"DATABASE_URL": database_url}
    tag = uuid.uuid4().hex[:8]
    partnership, anna = f"P-{tag}", f"anna-{tag}"
    assert cx(*add_args(anna, partnership, "--role", "reviewer"), env=env).returncode == 0

    away = cx("reviewers", "set-unavailable", anna, "--until", "2024-08-31", env=env)
    assert away.returncode == 0, away.stderr
    assert "2024-08-31" in away.stdout, away.stderr
    unavailable_until = "SELECT unavailable_until FROM reviewers WHERE reviewer_id = $1"
    assert await pg_pool.fetchval(unavailable_until, anna) == date(2024, 8, 31)
    # Re-adding (e.g. to fix a name) keeps the holiday.
    assert cx(*add_args(anna, partnership, "--role", "reviewer"), env=env).returncode == 0
    assert await pg_pool.fetchval(unavailable_until, anna) == date(2024, 8, 31)

    assert cx("reviewers", "set-unavailable", anna, "--clear", env=env).returncode == 0
    assert await pg_pool.fetchval(unavailable_until, anna) is None

    assert "no such reviewer" in one_line_error(
        cx("reviewers", "set-unavailable", f"ghost-{tag}", "--until", "2024-08-31", env=env), code=3
    )
    assert "exactly one" in one_line_error(cx("reviewers", "set-unavailable", anna, env=env))
    assert "exactly one" in one_line_error(
        cx("reviewers", "set-unavailable", anna, "--clear", "--until", "2024-08-31", env=env)
    )
    assert "YYYY-MM-DD" in one_line_error(cx("reviewers", "set-unavailable", anna, "--until", "31/08/2024", env=env))


async def test_inbox_lists_open_assignments_oldest_deadline_first(database_url: str, pg_pool: asyncpg.Pool) -> None:
    """The inbox shows only open assignments, earliest due first, with stage and partnership from the read
    model when it has the exchange and without them when it lags; list shows the open load."""
    env = {"DATABASE_URL": database_url}
    tag = uuid.uuid4().hex[:8]
    partnership, anna = f"P-{tag}", f"anna-{tag}"
    assert cx(*add_args(anna, partnership, "--role", "reviewer"), env=env).returncode == 0
    due = datetime(2024, 6, 3, 17, tzinfo=UTC)
    # Opened in an order different from the deadlines, so that the ordering is the query's.
    async with pg_pool.acquire() as conn:
        for application, days in (("later", 9), ("sooner", 1), ("done", 0), ("middle", 4)):
            await update_assignment(
                conn,
                UpdateAssignmentInput(
                    application_id=f"{application}-{tag}",
                    reviewer_id=anna,
                    status=AssignmentStatus.OPEN,
                    due_at=due + timedelta(days=days),
                ),
            )
        await update_assignment(
            conn,
            UpdateAssignmentInput(application_id=f"done-{tag}", reviewer_id=anna, status=AssignmentStatus.SUBMITTED),
        )
    await pg_pool.execute(
        """INSERT INTO exchanges (application_id, partnership_id, host_partnership_id, visitor_org_id, host_org_id,
                                  host_country, start_date, end_date, stage, submitted_by, last_sequence, updated_at)
           VALUES ($1, $2, 'HOP', 'vo', 'ho', 'FR', '2024-07-01', '2024-07-05', 'REVIEW', 'someone', 3, now())""",
        f"middle-{tag}",
        partnership,
    )

    result = cx("review", "inbox", "--as", anna, "--json", env=env)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert [i["application_id"] for i in items] == [f"sooner-{tag}", f"middle-{tag}", f"later-{tag}"]
    assert (items[1]["stage"], items[1]["partnership_id"]) == ("REVIEW", partnership)
    assert (items[0]["stage"], items[0]["partnership_id"]) == (None, None)
    assert datetime.fromisoformat(items[0]["due_at"]) == due + timedelta(days=1)

    table = cx("review", "inbox", "--as", anna, env=env)
    assert table.returncode == 0
    assert table.stdout.index(f"sooner-{tag}") < table.stdout.index(f"later-{tag}")
    assert "(not yet projected)" in table.stdout

    listed = json.loads(cx("reviewers", "list", "--partnership", partnership, "--json", env=env).stdout)
    assert listed[0]["open_load"] == 3

    assert "no such reviewer" in one_line_error(cx("review", "inbox", "--as", f"ghost-{tag}", env=env), code=3)
    empty = cx(*add_args(f"new-{tag}", partnership, "--role", "reviewer"), env=env)
    assert empty.returncode == 0
    assert "nothing waits" in cx("review", "inbox", "--as", f"new-{tag}", env=env).stdout


def test_commands_without_a_database_say_how_to_get_one() -> None:
    """With no DATABASE_URL and no running stack, the error says what to set, in one line."""
    assert "DATABASE_URL" in one_line_error(cx("review", "inbox", "--as", "anna"), code=5)


def test_every_command_has_help_with_an_example() -> None:
    """Each command's --help exits 0 and shows an example line."""
    for command in (["reviewers", "add"], ["reviewers", "list"], ["reviewers", "set-unavailable"], ["review", "inbox"]):
        result = cx(*command, "--help")
        assert result.returncode == 0, command
        assert "Example:" in result.stdout, command
