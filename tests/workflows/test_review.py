"""REVIEW in depth on the time-skipping server: refusals, quorum, changes, deadlines, extension, appeal."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import DecisionRefused, ExchangeClient
from ledger.review import add_reviewer
from ledger.store import LedgerStore
from schemas.exchange import ExchangeStatus
from schemas.ids import exchange_workflow_id
from schemas.review import Reviewer, ReviewerRole
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import (
    OFFICER,
    Fund,
    approve,
    assigned,
    panel_member,
    result_of,
    review,
    until,
    wait_for_stage,
)
from tests.workflows.histories import record, replay_and_maybe_record

JUSTIFY = "Documented in the programme file."


async def _in_review(client: ExchangeClient, fund: Fund, **overrides: object) -> tuple[str, str, ExchangeStatus]:
    partnership = await fund(1_000_000)
    app = application(visitor_partnership_id=partnership, **overrides)
    await client.start_exchange(app)
    status = await assigned(client, app.application_id)
    return app.application_id, partnership, status


def _open(status: ExchangeStatus) -> list[str]:
    assert status.review is not None
    return [a.reviewer_id for a in status.review.assignments if a.status == "open"]


async def test_each_refusal_is_immediate_and_leaves_no_trace(
    ts_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """Unassigned reviewer, the submitter, bad scores, a second vote, a non-officer override and an officer
    overriding their own review are all refused with a reason; a decision in the wrong stage too."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    first, second = _open(status)
    outsider = panel_member(partnership, "rev-c") if panel_member(partnership, "rev-c") not in (first, second) else "x"
    with pytest.raises(DecisionRefused, match="not assigned"):
        await ts_client.submit_review(app_id, review(outsider))
    with pytest.raises(DecisionRefused, match="submitted or amended"):
        await ts_client.submit_review(app_id, review("officer-anna"))
    with pytest.raises(DecisionRefused, match="scores"):
        await ts_client.submit_review(app_id, review(first) | {"scores": {"relevance": 5}})
    with pytest.raises(DecisionRefused, match="scores"):
        await ts_client.submit_review(app_id, review(first, score=9))
    await ts_client.submit_review(app_id, review(first, score=2))
    with pytest.raises(DecisionRefused, match="already reviewed"):
        await ts_client.submit_review(app_id, review(first))
    with pytest.raises(DecisionRefused, match="not a programme officer"):
        await ts_client.decide(app_id, "override", {"actor_id": first, "decision": "approve", "justification": JUSTIFY})
    status = await ts_client.status(app_id)
    assert status.review is not None
    assert status.review.submitted_by == (first,)
    await ts_client.submit_review(app_id, review(second, score=5))
    await wait_for_stage(ts_client, app_id, Stage.AGREEMENT)  # mean 3.5 >= 3.0, no veto
    with pytest.raises(DecisionRefused, match="not allowed in stage AGREEMENT"):
        await ts_client.submit_review(app_id, review(first))


async def test_four_eyes_an_officer_cannot_override_their_own_review(
    ts_client: ExchangeClient, ledger_store: LedgerStore, pg_pool: asyncpg.Pool
) -> None:
    """A programme officer who also reviewed this application may not override its review (four-eyes)."""
    partnership = f"p-dual-{uuid.uuid4().hex[:8]}"
    await ledger_store.allocate(
        idempotency_key=f"{partnership}:allocate:1", partnership_id=partnership, amount_cents=10**6
    )
    async with pg_pool.acquire() as conn:
        for reviewer_id, roles in (
            ("dual", {ReviewerRole.REVIEWER, ReviewerRole.PROGRAMME_OFFICER}),
            ("solo", {ReviewerRole.REVIEWER}),
        ):
            await add_reviewer(
                conn,
                Reviewer(
                    reviewer_id=f"{reviewer_id}-{partnership}",
                    name=reviewer_id,
                    organisation_id=f"org-{reviewer_id}-{partnership}",
                    country="BE",
                    partnership_id=partnership,
                    roles=frozenset(roles),
                ),
            )
    app = application(visitor_partnership_id=partnership)
    await ts_client.start_exchange(app)
    await assigned(ts_client, app.application_id)
    dual = f"dual-{partnership}"
    await ts_client.submit_review(app.application_id, review(dual, score=2))
    with pytest.raises(DecisionRefused, match="four-eyes"):
        await ts_client.decide(
            app.application_id, "override", {"actor_id": dual, "decision": "approve", "justification": JUSTIFY}
        )


async def test_quorum_not_reached_waits_and_a_veto_rejects(ts_client: ExchangeClient, funded_partnership: Fund) -> None:
    """One review of a quorum of two decides nothing; the second review's reject is a veto: REJECTED."""
    app_id, _, status = await _in_review(ts_client, funded_partnership)
    first, second = _open(status)
    await ts_client.submit_review(app_id, review(first, score=5))
    await asyncio.sleep(0.3)
    assert (await ts_client.status(app_id)).stage is Stage.REVIEW
    await ts_client.submit_review(app_id, review(second, score=5, recommendation="reject") | {"comment": "no agenda"})
    status = await wait_for_stage(ts_client, app_id, Stage.REJECTED)
    assert "vetoed by" in status.history[-1].reason
    assert "no agenda" in status.history[-1].reason


async def test_changes_requested_then_amended_then_approved(
    ts_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """A request for changes invalidates earlier reviews; the amendment is screened again and then approved."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    first, second = _open(status)
    await ts_client.submit_review(app_id, review(first))
    await ts_client.decide(app_id, "request_changes", {"actor_id": second, "changes": "Add a day-by-day agenda."})
    status = await ts_client.status(app_id)
    assert status.review is not None
    assert status.review.submitted_by == ()
    assert status.review.changes_requested
    with pytest.raises(DecisionRefused, match="changes were requested"):
        await ts_client.submit_review(app_id, review(first))
    original = application(visitor_partnership_id=partnership).model_dump(mode="json")
    amended = (await ts_client.status(app_id)).application_id
    amended_app = original | {"application_id": amended, "goals": "Day 1: clean room. Day 2: metrology. ..."}
    with pytest.raises(DecisionRefused, match="reviews this application"):
        await ts_client.decide(app_id, "amend_application", {"actor_id": first, "application": amended_app})
    await ts_client.decide(app_id, "amend_application", {"actor_id": "visitor-vera", "application": amended_app})
    status = await until(
        ts_client,
        app_id,
        lambda s: (
            s.review is not None
            and s.review.changes_requested is None
            and s.stage is Stage.REVIEW
            and len(_open(s)) == 2
        ),
        "the amended application back in REVIEW with two open reviewers",
    )
    assert [t.stage for t in status.history].count(Stage.SCREENING) == 2
    await approve(ts_client, app_id)
    await wait_for_stage(ts_client, app_id, Stage.AGREEMENT)
    await record(ts_client, app_id, "exchange_amended")


async def test_declaring_a_conflict_assigns_a_replacement(ts_client: ExchangeClient, funded_partnership: Fund) -> None:
    """A reviewer who recuses is replaced by the third panel member; the recused one cannot vote."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    recused = _open(status)[0]
    await ts_client.decide(
        app_id, "declare_conflict", {"actor_id": recused, "reason": "I advise the host organisation."}
    )
    status = await until(
        ts_client, app_id, lambda s: len(_open(s)) == 2 and recused not in _open(s), "a replacement reviewer"
    )
    assert panel_member(partnership, "rev-c") in _open(status)
    with pytest.raises(DecisionRefused, match="not assigned"):
        await ts_client.submit_review(app_id, review(recused))


async def test_reminder_escalation_and_auto_reassignment(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """Silent reviewers get a reminder, then the officer an escalation, then silent reviewers are replaced."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    silent = set(_open(status))
    await time_skipping_env.sleep(timedelta(days=16))  # past 10 working days: reminder and escalation
    status = await until(ts_client, app_id, lambda s: bool(s.review and s.review.escalated), "the escalation")
    assert any(a.startswith("review_escalated") for a in status.alerts)
    reminded = await pg_pool.fetchval(
        "SELECT details->'reviewers' FROM audit_events WHERE application_id = $1 AND event = 'review_reminder'", app_id
    )
    assert reminded is not None
    assert set(json.loads(reminded)) == silent
    await time_skipping_env.sleep(timedelta(days=6))  # past the 3-working-day grace: reassignment
    status = await until(
        ts_client, app_id, lambda s: bool(s.review and s.review.reassignment_rounds == 1), "one reassignment round"
    )
    assert status.review is not None
    replaced = {a.reviewer_id for a in status.review.assignments if a.status == "reassigned"}
    assert replaced == silent
    assert _open(status) == [panel_member(partnership, "rev-c")]  # the only reviewer left without a conflict
    await record(ts_client, app_id, "exchange_reassigned")


async def test_an_extension_moves_the_deadline(ts_client: ExchangeClient, funded_partnership: Fund) -> None:
    """An officer's extension by 5 working days moves the review deadline by a week; others may not extend."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    assert status.review is not None
    assert status.review.due_at is not None
    before = status.review.due_at
    with pytest.raises(DecisionRefused, match="not a programme officer"):
        await ts_client.decide(
            app_id,
            "extend_review_deadline",
            {"actor_id": _open(status)[0], "working_days": 5, "justification": JUSTIFY},
        )
    status = await ts_client.decide(
        app_id,
        "extend_review_deadline",
        {"actor_id": panel_member(partnership, OFFICER), "working_days": 5, "justification": JUSTIFY},
    )
    assert status.review is not None
    assert status.review.due_at is not None
    assert status.review.due_at - before >= timedelta(days=7)
    assert status.deadlines["review"] == status.review.due_at


async def test_reopen_within_the_appeal_window_and_not_after(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    funded_partnership: Fund,
    ledger_store: LedgerStore,
) -> None:
    """A rejection reopened by an officer within 30 days goes back to REVIEW; after the window it is final."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    officer = panel_member(partnership, OFFICER)
    for reviewer_id in _open(status):
        await ts_client.submit_review(app_id, review(reviewer_id, score=1))
    await wait_for_stage(ts_client, app_id, Stage.REJECTED)
    await ts_client.decide(app_id, "reopen", {"actor_id": officer, "justification": JUSTIFY})
    # The appeal goes to reviewers who have not seen the application: only rev-c is left, so the
    # shortfall is escalated and the officer decides.
    status = await until(
        ts_client,
        app_id,
        lambda s: s.stage is Stage.REVIEW and len(_open(s)) == 1 and bool(s.review and s.review.escalated),
        "the reopened review with one open reviewer, escalated",
    )
    assert _open(status) == [panel_member(partnership, "rev-c")]
    assert status.review is not None
    assert status.review.escalated
    await ts_client.decide(app_id, "override", {"actor_id": officer, "decision": "reject", "justification": JUSTIFY})
    await wait_for_stage(ts_client, app_id, Stage.REJECTED)
    await time_skipping_env.sleep(timedelta(days=31))
    outcome = await result_of(ts_client, app_id)
    assert outcome.stage is Stage.REJECTED
    handle = ts_client.temporal.get_workflow_handle(exchange_workflow_id(app_id))
    await replay_and_maybe_record(handle, "exchange_rejected_reopened")
    with pytest.raises(DecisionRefused, match="ended"):
        await ts_client.decide(app_id, "reopen", {"actor_id": officer, "justification": JUSTIFY})
    balances = {b.partnership_id: b for b in await ledger_store.partnership_balances()}
    assert balances[partnership].held_cents == 0


async def test_an_officer_override_decides_and_a_repeated_update_id_is_answered_once(
    ts_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """The same update id sent twice records one review; an officer's override then approves."""
    app_id, partnership, status = await _in_review(ts_client, funded_partnership)
    first = _open(status)[0]
    once = await ts_client.submit_review(app_id, review(first), update_id="review-once")
    again = await ts_client.submit_review(app_id, review(first), update_id="review-once")
    assert once.review == again.review
    override = {"actor_id": panel_member(partnership, OFFICER), "decision": "approve", "justification": JUSTIFY}
    await ts_client.decide(app_id, "override", override)
    await wait_for_stage(ts_client, app_id, Stage.AGREEMENT)
