"""`cx import` as a subprocess against the dev server: bad rows reported and skipped, good rows started once."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import asyncpg
from temporalio.testing import WorkflowEnvironment

from clients.import_commands import read_rows
from schemas.ids import exchange_workflow_id
from tests.clients.test_cli import cx
from tests.factories import application

COLUMNS = [
    "application_id",
    "visitor_partnership_id",
    "host_partnership_id",
    "start_date",
    "end_date",
    "submitted_by",
    *(
        f"{side}_{field}"
        for side in ("visitor", "host")
        for field in ("organisation_id", "name", "type", "country", "latitude", "longitude")
    ),
]


def _row(**overrides: str) -> dict[str, str]:
    app = application().model_dump(mode="json")
    row = {k: str(app[k]) for k in COLUMNS if "_" in k and k in app}
    for side in ("visitor", "host"):
        for field in ("organisation_id", "name", "type", "country", "latitude", "longitude"):
            row[f"{side}_{field}"] = str(app[side][field])
    return row | overrides


async def test_import_reports_bad_rows_starts_good_ones_once(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Rows 2 and 4 are refused with their fields named; rows 1 and 3 start; a re-run starts nothing new."""
    rows = [_row(), _row(visitor_country="Poland"), _row(), _row(end_date="")]
    path = tmp_path / "applications.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    env = {
        "TEMPORAL_ADDRESS": dev_server_env.client.service_client.config.target_host,
        "CX_TASK_QUEUE": f"cx-import-{uuid.uuid4().hex[:8]}",
    }
    first = cx("import", str(path), "--json", env=env)
    assert first.returncode == 1, first.stderr
    report = {item["row"]: item for item in json.loads(first.stdout)}
    assert [report[n]["outcome"] for n in (1, 2, 3, 4)] == ["started", "refused", "started", "refused"]
    assert any("visitor.country" in e for e in report[2]["errors"])
    assert any("end_date" in e for e in report[4]["errors"])
    for number in (1, 3):
        started = dev_server_env.client.get_workflow_handle(exchange_workflow_id(rows[number - 1]["application_id"]))
        assert (await started.describe()).workflow_type == "Exchange"

    again = cx("import", str(path), env=env)
    assert again.returncode == 1
    assert "0 started, 2 already started, 2 refused, 0 conflict" in again.stdout


def test_csv_columns_carry_the_membership_flags(tmp_path: Path) -> None:
    """`visitor_cluster_member` (R1) and `visitor_member_of_profiled_cluster` (R3) nest as booleans."""
    path = tmp_path / "flags.csv"
    path.write_text(
        "application_id,visitor_type,visitor_cluster_member,host_member_of_profiled_cluster\n"
        "a-1,scale_up_support,true,false\n"
    )
    (row,) = read_rows(path)
    assert row.data["visitor"] == {"type": "scale_up_support", "cluster_member": True}
    assert row.data["host"] == {"member_of_profiled_cluster": False}
    assert (row.row, row.line, row.columns["visitor.cluster_member"]) == (1, 2, "visitor_cluster_member")


def test_import_refuses_an_unreadable_file_in_one_line(tmp_path: Path) -> None:
    """A file that is not .json or .csv, or not valid JSON, is one error line and exit 2 (USAGE)."""
    odd = tmp_path / "applications.xlsx"
    odd.write_text("x")
    result = cx("import", str(odd))
    assert result.returncode == 2 and ".json or .csv" in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "applications.json"
    broken.write_text("[{")
    result = cx("import", str(broken))
    assert result.returncode == 2 and "not valid JSON" in result.stderr


async def test_list_late_shows_open_exchanges_past_a_deadline_only(pg_pool: asyncpg.Pool, database_url: str) -> None:
    """`cx list --late` shows an open exchange whose next deadline passed, not a terminal or a timely one."""
    from datetime import UTC, datetime, timedelta

    from temporalio.testing import ActivityEnvironment

    from activities.projection import ProjectionActivities
    from schemas.activities import ProjectTransitionInput
    from schemas.stages import Stage

    now = datetime.now(UTC)
    cases = {
        "late": (Stage.REVIEW, now - timedelta(days=1)),
        "timely": (Stage.REVIEW, now + timedelta(days=3)),
        "closed": (Stage.PAID, now - timedelta(days=1)),
    }
    ids = {}
    for name, (stage, deadline) in cases.items():
        app = application()
        ids[name] = app.application_id
        await ActivityEnvironment().run(
            ProjectionActivities(pg_pool).record_transition,
            ProjectTransitionInput(
                application=app,
                stage=stage,
                at=now,
                actor_id="system",
                event="stage_entered",
                sequence=1,
                next_deadline=deadline,
            ),
        )
    result = cx("list", "--late", "--json", "--limit", "1000", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    listed = {row["application_id"] for row in json.loads(result.stdout)}
    assert ids["late"] in listed and ids["timely"] not in listed and ids["closed"] not in listed
