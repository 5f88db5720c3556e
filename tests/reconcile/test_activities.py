"""The reconciliation's activities on their own (ActivityEnvironment, the module's real database and dev server):
a retried comparison writes, counts and alerts each difference once, and a retry resumes after the last page
it heartbeated (issue 17, item 4)."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import reconcile as reconcile_activities
from activities.reconcile import ReconcileActivities
from schemas.reconcile import CompareInput, Comparison, FindingKind, ReportInput
from tests.reconcile.conftest import PROGRAMME_ADDRESS, World
from tests.reconcile.test_reconcile import read_model_held, update_column
from workers.devstack import free_port
from workers.metrics import runtime_with_metrics


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def _activities(world: World) -> ReconcileActivities:
    return ReconcileActivities(world.pool, world.temporal, world.task_queue, PROGRAMME_ADDRESS)


async def test_a_retried_comparison_writes_counts_and_alerts_each_difference_once(world: World) -> None:
    """The same comparison run twice for one run id (a retry after a crash): one row, the counter at 1 for its
    kind, one warning per new finding only; the report twice: one notification in the outbox."""
    address = f"127.0.0.1:{free_port()}"
    env = ActivityEnvironment()
    runtime = runtime_with_metrics(address)  # kept referenced: its Prometheus endpoint lives as long as it does
    env.metric_meter = runtime.metric_meter
    heartbeats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    run_id = f"retry-{uuid.uuid4().hex[:8]}"
    request = CompareInput(run_id=run_id, comparison=Comparison.LEDGER, cutoff=datetime.now(UTC), page_size=2)
    expected, repair = await read_model_held(world)
    try:
        first = await env.run(_activities(world).compare, request)
        second = await env.run(_activities(world).compare, request)
    finally:
        await repair()
    assert first.differences == second.differences == 1
    assert first.compared == 3
    # Three exchanges in pages of two, then the orphan accounts' one page: a heartbeat per page, each attempt.
    assert heartbeats[:3] == [(0, _ids(world)[1]), (0, ""), (1, "")]
    rows = await world.pool.fetch("SELECT kind, application_id FROM reconciliation_findings WHERE run_id = $1", run_id)
    assert {(FindingKind(r["kind"]), r["application_id"]) for r in rows} == expected
    assert len(rows) == 1
    text = await asyncio.to_thread(_scrape, address)
    counted = [line for line in text.splitlines() if line.startswith("cx_reconcile_differences_total")]
    assert len(counted) == 1, counted
    assert 'kind="ledger_held"' in counted[0], counted
    assert counted[0].endswith(" 1"), counted
    report = ReportInput(run_id=run_id, started_at=datetime.now(UTC), compared={Comparison.LEDGER: 3})
    once = await env.run(_activities(world).report_findings, report)
    twice = await env.run(_activities(world).report_findings, report)
    assert once == twice
    assert once.by_kind == {FindingKind.LEDGER_HELD: 1}
    alerts = await world.pool.fetchval("SELECT count(*) FROM outbox WHERE dedup_key = $1", f"reconcile:{run_id}")
    assert alerts == 1


def _ids(world: World) -> list[str]:
    """The module's exchanges in the order the comparisons page through them."""
    return sorted((world.paid, world.agreement, world.review))


async def test_a_retry_resumes_after_the_last_page_it_heartbeated(world: World) -> None:
    """The first exchange's held amount is broken in the read model. A fresh attempt finds it; an attempt whose
    heartbeat said "after the first exchange" or "first pass done" does not look at it again (nothing is found
    twice or redone after a crash)."""
    first = _ids(world)[0]
    run_id = f"resume-{uuid.uuid4().hex[:8]}"
    request = CompareInput(run_id=run_id, comparison=Comparison.LEDGER, cutoff=datetime.now(UTC), page_size=2)
    env = ActivityEnvironment()
    held = await world.pool.fetchval("SELECT held_cents FROM exchanges WHERE application_id = $1", first)
    repair = await update_column(world, "exchanges", "held_cents", first, held + 100)
    try:
        fresh = await env.run(_activities(world).compare, request)
        env.info = dataclasses.replace(env.info, heartbeat_details=[0, first])
        after_first = await env.run(_activities(world).compare, request)
        env.info = dataclasses.replace(env.info, heartbeat_details=[1, ""])
        second_pass = await env.run(_activities(world).compare, request)
    finally:
        await repair()
    assert (fresh.differences, fresh.compared) == (1, 3)
    assert (after_first.differences, after_first.compared) == (0, 2)
    assert (second_pass.differences, second_pass.compared) == (0, 0)


async def test_the_ledger_checks_heartbeat_while_they_run(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariants have no pages: a beat every HEARTBEAT_EVERY_S (shortened here) keeps a long check alive
    under the heartbeat timeout, and the beats stop with the checks."""
    monkeypatch.setattr(reconcile_activities, "HEARTBEAT_EVERY_S", 0.001)
    beats: list[tuple[Any, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    run_id = f"beats-{uuid.uuid4().hex[:8]}"
    request = CompareInput(
        run_id=run_id, comparison=Comparison.LEDGER_INVARIANTS, cutoff=datetime.now(UTC), page_size=2
    )
    result = await env.run(_activities(world).compare, request)
    assert result.compared > 0
    assert result.differences == 0
    assert beats, "no heartbeat while the ledger checks ran"
    counted = len(beats)
    await asyncio.sleep(0.05)
    assert len(beats) == counted, "heartbeats went on after the checks ended"
