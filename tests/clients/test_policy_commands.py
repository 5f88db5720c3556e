"""`cx policy simulate` and `cx explain` against a real read model: dry runs report changes and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from schemas.policy import POLICIES_DIR
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application, project


async def _project(pool: asyncpg.Pool, app_overrides: dict[str, object], stage: Stage, grant: int, held: int) -> str:
    app = application(**app_overrides)
    await project(
        pool,
        app,
        stage,
        event="priced",
        grant_cents=grant,
        held_cents=held,
        policy_version="2022.1",
        details={"full_rate_cents": 95_000, "halved_because": [], "input_digest": "sha256:abc"},
    )
    return app.application_id


async def test_simulate_reports_what_a_stricter_policy_would_change_and_writes_nothing(
    pg_pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """A candidate requiring 6 working days makes a 5-day exchange ineligible and releases its hold, on paper only."""
    app_id = await _project(pg_pool, {}, Stage.AGREEMENT, 95_000, 95_000)
    text = (POLICIES_DIR / "clusterxchange-2022.1.toml").read_text()
    candidate = text.replace('version = "2022.1"', 'version = "candidate-6-days"').replace(
        "min_working_days = 3", "min_working_days = 6"
    )
    assert candidate.count("candidate-6-days") == 1
    assert "min_working_days = 6" in candidate
    path = tmp_path / "candidate.toml"
    path.write_text(candidate)
    before = await pg_pool.fetchrow(
        "SELECT stage, held_cents, updated_at FROM exchanges WHERE application_id = $1", app_id
    )

    result = cx("policy", "simulate", str(path), "--json", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    mine = next(e for e in report["exchanges"] if e["application_id"] == app_id)
    assert (mine["outcome_now"], mine["outcome_candidate"]) == ("eligible", "ineligible")
    assert {f["rule"] for f in mine["failures_candidate"]} == {"R6"}
    after = await pg_pool.fetchrow(
        "SELECT stage, held_cents, updated_at FROM exchanges WHERE application_id = $1", app_id
    )
    assert before == after


def test_simulate_refuses_a_bad_policy_file_naming_the_field(tmp_path: Path) -> None:
    """A candidate with a negative cap is refused with the field named, before any database is read."""
    text = (
        (POLICIES_DIR / "clusterxchange-2022.1.toml")
        .read_text()
        .replace("lump_sum_cap_cents = 110000", "lump_sum_cap_cents = -5")
    )
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = cx("policy", "simulate", str(path))
    assert result.returncode == 2
    assert "pricing.lump_sum_cap_cents" in result.stderr
    assert "Traceback" not in result.stderr


async def test_explain_prints_the_recorded_decision_with_policy_and_digest(
    pg_pool: asyncpg.Pool, database_url: str
) -> None:
    """cx explain reads the audit trail: the pricing decision with its policy version and input digest."""
    app_id = await _project(pg_pool, {}, Stage.FUNDING, 95_000, 0)
    result = cx("explain", app_id, "--json", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    explanation = json.loads(result.stdout)
    priced = next(d for d in explanation["decisions"] if d["event"] == "priced")
    assert priced["policy_version"] == "2022.1"
    assert priced["details"]["input_digest"] == "sha256:abc"
    missing = cx("explain", "no-such-exchange", env={"DATABASE_URL": database_url})
    assert missing.returncode == 1
    assert "no such exchange" in missing.stderr
