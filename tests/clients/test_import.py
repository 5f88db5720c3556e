"""`cx import` as a subprocess against the dev server: bad rows reported and skipped, good rows started once."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from clients.exit_codes import ExitCode
from clients.import_commands import read_rows, recorded_application
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
    assert result.returncode == 2
    assert ".json or .csv" in result.stderr
    assert "Traceback" not in result.stderr
    broken = tmp_path / "applications.json"
    broken.write_text("[{")
    result = cx("import", str(broken))
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr


async def test_list_late_shows_open_exchanges_past_a_deadline_only(pg_pool: asyncpg.Pool, database_url: str) -> None:
    """`cx list --late` shows an open exchange whose next deadline passed, not a terminal or a timely one."""
    from datetime import UTC, datetime, timedelta

    from schemas.stages import Stage
    from tests.factories import project

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
        await project(pg_pool, app, stage, at=now, next_deadline=deadline)
    result = cx("list", "--late", "--json", "--limit", "1000", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    listed = {row["application_id"] for row in json.loads(result.stdout)}
    assert ids["late"] in listed
    assert ids["timely"] not in listed
    assert ids["closed"] not in listed


def _temporal(env: WorkflowEnvironment) -> dict[str, str]:
    """A subprocess environment pointing at the dev server, with a task queue of this test's own (no worker
    is needed: an import only starts workflows, and reads a started one's history)."""
    return {
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "CX_TASK_QUEUE": f"cx-import-{uuid.uuid4().hex[:8]}",
    }


async def test_an_id_imported_again_with_a_different_application_is_a_conflict(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Re-importing the same applications is "already started" (exit 0); a row whose id already started an
    exchange with a different application is a conflict naming the id and the first field that differs, and
    the whole import exits 4 (CONFLICT), even beside refused rows (exit 1 otherwise)."""
    env = _temporal(dev_server_env)
    first, second = application(), application()
    original = tmp_path / "applications.json"
    original.write_text(json.dumps([first.model_dump(mode="json"), second.model_dump(mode="json")], indent=2))
    started = await asyncio.to_thread(cx, "import", str(original), "--json", env=env)
    assert started.returncode == ExitCode.OK, started.stderr
    assert [item["outcome"] for item in json.loads(started.stdout)] == ["started", "started"]

    again = await asyncio.to_thread(cx, "import", str(original), env=env)
    assert again.returncode == ExitCode.OK, again.stderr
    assert "0 started, 2 already started, 0 refused, 0 conflict" in again.stdout

    changed = first.model_dump(mode="json")
    changed["visitor"]["name"] = "Another Cluster"
    changed["goals"] = "Something else entirely."
    broken = {"application_id": "broken-row"}
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps([second.model_dump(mode="json"), changed, broken], indent=2))
    result = await asyncio.to_thread(cx, "import", str(edited), "--json", env=env)
    assert result.returncode == ExitCode.CONFLICT, result.stderr
    report = {item["row"]: item for item in json.loads(result.stdout)}
    assert [report[n]["outcome"] for n in (1, 2, 3)] == ["already started", "conflict", "refused"]
    [conflict] = report[2]["errors"]
    assert f"application_id '{first.application_id}' already started an exchange with a different application" in (
        conflict
    )
    assert 'visitor.name was "Krakow Photonics Cluster", this row has "Another Cluster"' in conflict
    assert report[2]["line"] > report[1]["line"]

    human = await asyncio.to_thread(cx, "import", str(edited), env=env)
    assert human.returncode == ExitCode.CONFLICT
    assert f"edited.json line {report[2]['line']} (row 2, {first.application_id}): conflict: " in human.stdout
    assert "1 already started, 1 refused, 1 conflict" in human.stdout


async def test_a_csv_saved_by_excel_is_imported(dev_server_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, a non-ASCII name and a blank last line; and the
    same with `;` between columns and decimal commas, as Excel writes it where the decimal separator is a
    comma. Every row starts, with the coordinates as numbers."""
    env = _temporal(dev_server_env)
    for delimiter in (",", ";"):
        rows = [_row(visitor_name="Société Générale Cluster"), _row(host_name="Zürcher Cluster")]
        if delimiter == ";":  # where `;` separates columns, a comma separates decimals
            for row in rows:
                row["visitor_latitude"] = row["visitor_latitude"].replace(".", ",")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, delimiter=delimiter, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        path = tmp_path / f"excel{'-semicolons' if delimiter == ';' else ''}.csv"
        path.write_bytes(codecs.BOM_UTF8 + (buffer.getvalue() + "\r\n").encode("utf-8"))
        result = await asyncio.to_thread(cx, "import", str(path), "--json", env=env)
        assert result.returncode == ExitCode.OK, (delimiter, result.stdout, result.stderr)
        assert [item["outcome"] for item in json.loads(result.stdout)] == ["started", "started"]
        handle = dev_server_env.client.get_workflow_handle(exchange_workflow_id(rows[0]["application_id"]))
        recorded = await recorded_application(ExchangeClient(dev_server_env.client), rows[0]["application_id"])
        assert recorded is not None
        assert recorded.visitor.name == "Société Générale Cluster"
        assert recorded.visitor.latitude == float(rows[0]["visitor_latitude"].replace(",", "."))
        assert (await handle.describe()).workflow_type == "Exchange"


def test_csv_rows_are_refused_naming_their_line_and_column(tmp_path: Path) -> None:
    """A field refused by the contract is reported with the line its row starts on (a quoted cell spanning
    two lines counts both) and the column that holds it; a row with too few cells is refused as such; with no
    valid row, nothing is contacted and the import exits 1 (REFUSED)."""
    path = tmp_path / "applications.csv"
    bad = _row(visitor_country="Poland", goals="Two lines\nof goals")
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "goals"])
        writer.writeheader()
        writer.writerow(bad)
        handle.write("too-few,cells\n")
    result = cx("import", str(path))
    assert result.returncode == ExitCode.REFUSED, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path} line 2 (row 1, {bad['application_id']}): refused: ")
    assert "visitor.country (column visitor_country): " in lines[0]
    header = len(COLUMNS) + 1
    assert lines[1] == f"{path} line 4 (row 2, too-few): refused: 2 cells, but the header has {header} columns"
    assert lines[2] == "0 started, 0 already started, 2 refused, 0 conflict"


IMPORT_RUNS = 30


@pytest.mark.timeout(IMPORT_RUNS * 6)  # interpreter starts: over 2 s each on a shared machine
async def test_cx_import_exits_cleanly_every_time(dev_server_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """30 consecutive `cx import` runs of an already-imported file (each connects to Temporal, starts, finds
    the duplicate and reads its history): every one exits 0 with no fatal error at interpreter exit
    (`PyGILState_Release`, issue 11: the same one Temporal runtime per process released before exit as
    `cx status`, clients/command.py `run`)."""
    env = _temporal(dev_server_env)
    path = tmp_path / "one.json"
    path.write_text(json.dumps([application().model_dump(mode="json")]))
    failures = []
    for run in range(IMPORT_RUNS):
        result = await asyncio.to_thread(cx, "import", str(path), env=env)
        if result.returncode != 0 or "Fatal Python error" in result.stderr or result.stderr:
            failures.append((run, result.returncode, result.stderr[-500:]))
    assert failures == [], f"{len(failures)} of {IMPORT_RUNS} runs failed: {failures[:3]}"
