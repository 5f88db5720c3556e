"""Trust at the edges (issue 10): what another team's service sends through any SDK is checked where it enters.

These tests drive the worker through the raw Temporal client, as a Node, Go or Java service would (no
pydantic, no ExchangeClient checks): an invalid start closes its workflow at once with a typed,
non-retryable failure; a run under a closed exchange's id changes nothing; refusals of updates reach
the caller as non-retryable failures with a stable type; a confirmation of payment counts only for
this exchange's order, for its amount, in PAYMENT, and finance's answer lands in Postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from ledger.persons import reveal
from schemas.errors import Refusal
from schemas.exchange import ExchangeStatus
from schemas.ids import EXCHANGE_WORKFLOW_TYPE, exchange_workflow_id
from schemas.stages import Stage
from tests.factories import application
from tests.waiting import eventually, within
from tests.workflows.conftest import (
    RESULT_WITHIN_S,
    Fund,
    agree,
    approve,
    assigned,
    result_of,
    review,
    send_update,
    until,
    uploaded_evidence,
    validate,
    wait_for_stage,
)
from tests.workflows.histories import replay_and_maybe_record


async def start_raw(
    client: ExchangeClient,
    payload: Any,
    workflow_id: str,
    *,
    reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
) -> WorkflowHandle[Any, Any]:
    """Start as another SDK would: a JSON payload, any workflow id, the SDK's default id-reuse policy."""
    return await client.temporal.start_workflow(
        EXCHANGE_WORKFLOW_TYPE,
        payload,
        id=workflow_id,
        task_queue=client.task_queue,
        id_reuse_policy=reuse,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The run's failure: it must have closed (never a task-failure loop) with an ApplicationError."""
    with pytest.raises(WorkflowFailureError) as failed:
        await within(handle.result(), f"{handle.id}: the run to close", RESULT_WITHIN_S)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def footprint(pool: asyncpg.Pool, application_id: str) -> dict[str, object]:
    """Everything an exchange can leave in Postgres, to prove a refused run left nothing."""
    return {
        "read_model": await pool.fetchrow(
            "SELECT stage, last_sequence FROM exchanges WHERE application_id = $1", application_id
        ),
        "audit_rows": await pool.fetchval(
            "SELECT count(*) FROM audit_events WHERE application_id = $1", application_id
        ),
        "runs": await pool.fetchval("SELECT count(*) FROM exchange_runs WHERE application_id = $1", application_id),
        "visits": await pool.fetchval(
            "SELECT count(*) FROM organisation_visits WHERE application_id = $1", application_id
        ),
        "ledger_accounts": await pool.fetchval(
            "SELECT count(*) FROM ledger_accounts WHERE code = $1", f"exchange:{application_id}"
        ),
    }


NOTHING = {"read_model": None, "audit_rows": 0, "runs": 0, "visits": 0, "ledger_accounts": 0}


@pytest.mark.parametrize(
    ("break_it", "field"),
    [
        (lambda d: d.pop("host"), "host"),
        (lambda d: d.update(start_date="2031-03-10", end_date="2031-03-01"), "end_date must not be before start_date"),
        (lambda d: d["visitor"].update(latitude="50.06"), "visitor.latitude"),
        (lambda d: d.update(host_agency_approved="yes"), "host_agency_approved"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
    ids=["missing-host", "end-before-start", "number-as-string", "bool-as-string", "unknown-field"],
)
async def test_an_invalid_start_closes_at_once_with_a_typed_failure(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, break_it: Callable[[dict[str, Any]], object], field: str
) -> None:
    """A start another SDK sends with an invalid application fails its workflow at once (InvalidInput,
    non-retryable, naming the field), instead of failing workflow tasks forever; it touches nothing."""
    data = application().model_dump(mode="json")
    break_it(data)
    handle = await start_raw(dev_client, data, exchange_workflow_id(data["application_id"]))
    failure = await failure_of(handle)
    assert failure.type == Refusal.INVALID_INPUT
    assert failure.non_retryable
    assert field in failure.message
    assert await footprint(pg_pool, data["application_id"]) == NOTHING


async def test_a_start_under_another_workflow_id_is_refused(dev_client: ExchangeClient, pg_pool: asyncpg.Pool) -> None:
    """The workflow checks that its id is exchange:<application_id>; any other id ends the run untouched."""
    app = application()
    for wrong_id in (f"exchange:{app.application_id}-x", app.application_id, f"Exchange:{app.application_id}"):
        failure = await failure_of(await start_raw(dev_client, app.model_dump(mode="json"), wrong_id))
        assert failure.type == Refusal.INVALID_INPUT
        assert failure.non_retryable
        assert "workflow id" in failure.message
        assert f"exchange:{app.application_id}" in failure.message
    assert await footprint(pg_pool, app.application_id) == NOTHING


async def test_a_start_from_the_future_or_under_an_unknown_policy_is_refused(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool
) -> None:
    """submitted_at after the start and a policy_version that is not on file are refused, naming the field."""
    future = application(submitted_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    failure = await failure_of(
        await start_raw(dev_client, future.model_dump(mode="json"), f"exchange:{future.application_id}")
    )
    assert failure.type == Refusal.INVALID_INPUT
    assert "submitted_at" in failure.message
    unknown = application(policy_version="1999.9")
    failure = await failure_of(
        await start_raw(dev_client, unknown.model_dump(mode="json"), f"exchange:{unknown.application_id}")
    )
    assert failure.type == Refusal.INVALID_INPUT
    assert "policy_version" in failure.message
    for app in (future, unknown):
        assert await footprint(pg_pool, app.application_id) == NOTHING


async def test_a_second_run_under_a_closed_exchanges_id_changes_nothing(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool
) -> None:
    """With an SDK's default id-reuse policy a closed exchange's id can be started again: that run ends at once
    as DuplicateApplication, and the first exchange's read model, audit trail and claims are as they were."""
    app = application()
    app = app.model_copy(update={"host": app.host.model_copy(update={"country": "PL"})})  # INELIGIBLE (R5)
    await dev_client.start_exchange(app)
    outcome = await result_of(dev_client, app.application_id)
    assert outcome.stage is Stage.INELIGIBLE
    before = await footprint(pg_pool, app.application_id)
    assert before["runs"] == 1

    changed = app.model_copy(update={"host": app.host.model_copy(update={"country": "FR"})})  # now eligible
    again = await start_raw(dev_client, changed.model_dump(mode="json"), exchange_workflow_id(app.application_id))
    failure = await failure_of(again)
    assert failure.type == Refusal.DUPLICATE_APPLICATION
    assert failure.non_retryable
    assert app.application_id in failure.message
    assert await footprint(pg_pool, app.application_id) == before


async def test_update_refusals_reach_any_sdk_typed_and_non_retryable(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """An update with a string for an integer, one in the wrong stage and one by the wrong person are each
    refused with a stable type (InvalidInput, WrongStage, NotAllowed), non-retryable, naming field or stage."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    await assigned(dev_client, app.application_id)
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    cases: list[tuple[str, dict[str, Any], Refusal, str]] = [
        (
            "extend_review_deadline",
            {"actor_id": "officer-x", "working_days": "5", "justification": "the panel is away this week"},
            Refusal.INVALID_INPUT,
            "working_days",
        ),
        ("sign_commitment", {"actor_id": "ho-hanna", "party": "HO"}, Refusal.WRONG_STAGE, "stage REVIEW"),
        (
            "submit_review",
            {"actor_id": "nobody", "recommendation": "approve", "scores": {}},
            Refusal.NOT_ALLOWED,
            "actor_id",
        ),
        ("withdraw", {"actor_id": "vera", "reason": "x", "extra": True}, Refusal.INVALID_INPUT, "extra"),
    ]
    for name, payload, refusal, named in cases:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await send_update(handle, name, payload)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError), (name, cause)
        assert (cause.type, cause.non_retryable) == (refusal.value, True), (name, cause.type, cause.message)
        assert named in cause.message, (name, cause.message)
    status = await dev_client.status(app.application_id)
    assert status.stage is Stage.REVIEW
    assert not status.signatures


async def drive_to_payment(
    client: ExchangeClient, env: WorkflowEnvironment, pool: asyncpg.Pool, app_id: str
) -> ExchangeStatus:
    """From REVIEW to a payment order: approve, agree, let the stay pass, report, accept the report."""
    await approve(client, app_id)
    await wait_for_stage(client, app_id, Stage.AGREEMENT)
    await agree(client, app_id)
    await env.sleep(timedelta(days=40))  # past the stay: the durable travel timers fire
    await wait_for_stage(client, app_id, Stage.REPORTING)
    await client.submit_report(
        app_id, {"actor_id": "visitor-vera", "summary": "Done.", "evidence": await uploaded_evidence(pool, app_id)}
    )
    await validate(client, app_id)
    return await until(client, app_id, lambda s: s.payment_order_id is not None, "the payment order", within_s=30)


def confirmation(order_id: str, amount_cents: int, reference: str = "SEPA-1") -> dict[str, Any]:
    return {
        "payment_order_id": order_id,
        "amount_cents": amount_cents,
        "payment_reference": reference,
        "confirmed_by": "finance-fia",
    }


async def ignored_confirmations(pool: asyncpg.Pool, application_id: str) -> list[str]:
    """The reasons, opened: a reason recorded under a person's id is sealed under their key (ledger/persons.py)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT reason FROM audit_events WHERE application_id = $1 AND event = 'payment_confirmation_ignored'
                ORDER BY sequence""",
            application_id,
        )
        return await reveal(conn, [row["reason"] for row in rows])


async def test_a_confirmation_counts_only_in_payment_for_this_order_and_amount(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """A confirm_payment sent in REVIEW, one naming another order, one with another amount and one that does
    not parse are each recorded as ignored and never remembered: the exchange stays in PAYMENT until the
    right one arrives; then the reference, time and who confirmed land in payment_orders and in the audit
    row of the step that makes it PAID."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    app_id = app.application_id
    await ts_client.start_exchange(app)
    await wait_for_stage(ts_client, app_id, Stage.REVIEW)
    handle = ts_client.temporal.get_workflow_handle(exchange_workflow_id(app_id))
    await handle.signal("confirm_payment", confirmation(f"po-{app_id}", 95_000, "EARLY-1"))
    await handle.signal("confirm_payment", {"payment_reference": "OLD-SHAPE", "confirmed_by": "finance"})
    early, malformed = await eventually(
        lambda: ignored_confirmations(pg_pool, app_id), lambda r: len(r) == 2, f"{app_id}: two ignored confirmations"
    )
    assert "counts only in PAYMENT" in early
    assert "REVIEW" in early
    assert "payment_order_id" in malformed
    assert "amount_cents" in malformed

    status = await drive_to_payment(ts_client, time_skipping_env, pg_pool, app_id)
    assert status.stage is Stage.PAYMENT, "the early confirmation must not have been remembered"
    order_id, amount = status.payment_order_id, status.paid_cents
    assert order_id == f"po-{app_id}"

    await handle.signal("confirm_payment", confirmation(f"po-{app_id}-other", amount, "WRONG-ORDER"))
    await handle.signal("confirm_payment", confirmation(order_id, amount + 1, "WRONG-AMOUNT"))
    ignored = await eventually(
        lambda: ignored_confirmations(pg_pool, app_id), lambda r: len(r) == 4, f"{app_id}: four ignored confirmations"
    )
    wrong_order, wrong_amount = ignored[2:]
    assert wrong_order.startswith("payment_order_id")
    assert wrong_amount.startswith("amount_cents")
    assert (await ts_client.status(app_id)).stage is Stage.PAYMENT

    await handle.signal("confirm_payment", confirmation(order_id, amount, "SEPA-2026-0001"))
    outcome = await result_of(ts_client, app_id)
    assert outcome.stage is Stage.PAID
    order = await pg_pool.fetchrow(
        "SELECT payment_reference, confirmed_at, confirmed_by FROM payment_orders WHERE application_id = $1", app_id
    )
    assert order is not None
    assert order["payment_reference"] == "SEPA-2026-0001"
    assert order["confirmed_by"] == "finance-fia"
    assert order["confirmed_at"] is not None
    paid = await pg_pool.fetchrow(
        """SELECT actor_id, details FROM audit_events
            WHERE application_id = $1 AND event = 'stage_entered' AND stage = 'PAID'""",
        app_id,
    )
    assert paid is not None
    assert paid["actor_id"] == "finance-fia"
    assert '"payment_reference": "SEPA-2026-0001"' in paid["details"]
    await replay_and_maybe_record(handle, "exchange_paid_after_ignored_confirmations")


async def test_a_repeated_confirmation_in_payment_changes_nothing(
    ts_client: ExchangeClient, time_skipping_env: WorkflowEnvironment, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """Finance retries: the same confirmation twice in PAYMENT counts once; the exchange is PAID with it."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership, application_id=f"app-{uuid.uuid4().hex[:10]}")
    app_id = app.application_id
    await ts_client.start_exchange(app)
    await wait_for_stage(ts_client, app_id, Stage.REVIEW)
    status = await drive_to_payment(ts_client, time_skipping_env, pg_pool, app_id)
    assert status.payment_order_id is not None
    handle = ts_client.temporal.get_workflow_handle(exchange_workflow_id(app_id))
    same = confirmation(status.payment_order_id, status.paid_cents, "SEPA-RETRIED")
    await handle.signal("confirm_payment", same)
    await handle.signal("confirm_payment", same)
    outcome = await result_of(ts_client, app_id)
    assert outcome.stage is Stage.PAID
    assert await ignored_confirmations(pg_pool, app_id) == []
    assert (
        await pg_pool.fetchval("SELECT payment_reference FROM payment_orders WHERE application_id = $1", app_id)
        == "SEPA-RETRIED"
    )


async def test_r7_refuses_a_second_application_at_screening_before_any_reviewer_is_assigned(
    dev_client: ExchangeClient, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """R7 early: while one exchange of an organisation holds its visit (AGREEMENT), the organisation's next
    application ends INELIGIBLE at SCREENING, naming the holder, and no reviewer's time is spent on it."""
    partnership = await funded_partnership(1_000_000)
    first = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(first)
    await wait_for_stage(dev_client, first.application_id, Stage.REVIEW)
    await approve(dev_client, first.application_id)
    await wait_for_stage(dev_client, first.application_id, Stage.AGREEMENT)

    second = application(visitor_partnership_id=partnership, visitor=first.visitor.model_dump())
    await dev_client.start_exchange(second)
    outcome = await result_of(dev_client, second.application_id)
    assert outcome.stage is Stage.INELIGIBLE
    status = await dev_client.status(second.application_id)
    [failure] = status.screening_failures
    assert (failure.rule, failure.field) == ("R7", "visitor.organisation_id")
    assert first.application_id in failure.message
    assert "AGREEMENT" in failure.message
    assert Stage.REVIEW not in [t.stage for t in status.history]
    assigned_reviewers = await pg_pool.fetchval(
        "SELECT count(*) FROM review_assignments WHERE application_id = $1", second.application_id
    )
    assert assigned_reviewers == 0
    evidence = await pg_pool.fetchval(
        "SELECT details->'r7' FROM audit_events WHERE application_id = $1 AND event = 'screening_decided'",
        second.application_id,
    )
    assert '"held_by_application_id": "' + first.application_id + '"' in evidence


async def test_status_shows_only_the_deadlines_of_the_current_stage(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """After REVIEW is left for AGREEMENT, the review deadline is gone from status and from the next deadline."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    status = await assigned(dev_client, app.application_id)
    assert set(status.deadlines) == {"review"}
    await approve(dev_client, app.application_id)
    status = await wait_for_stage(dev_client, app.application_id, Stage.AGREEMENT)
    assert set(status.deadlines) == {"signatures"}


@pytest.mark.parametrize(
    ("break_it", "field"),
    [
        (lambda d: d.update(goals="clean\u0000room"), "goals"),
        (lambda d: d["visitor"].update(name="Krakow\u001bPhotonics"), "visitor.name"),
        (lambda d: d.update(submitted_by="an\u0085na"), "submitted_by"),
        (lambda d: d.update(start_date="0001-03-01"), "start_date"),
        (lambda d: d.update(end_date="9999-03-05"), "end_date"),
        (lambda d: d.update(submitted_at="1900-01-01T00:00:00Z"), "submitted_at"),
        (lambda d: d.update(goals="x" * 2001), "goals"),
    ],
    ids=["nul", "escape-in-name", "c1-in-actor", "year-1", "year-9999", "submitted-1900", "too-long"],
)
async def test_poison_is_refused_where_it_enters(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, break_it: Callable[[dict[str, Any]], object], field: str
) -> None:
    """Control characters, implausible dates and over-long text never reach Postgres or a workflow's later
    stages: the start fails at once with InvalidInput naming the field, touching nothing."""
    data = application().model_dump(mode="json")
    break_it(data)
    failure = await failure_of(await start_raw(dev_client, data, exchange_workflow_id(data["application_id"])))
    assert failure.type == Refusal.INVALID_INPUT, failure.message
    assert field in failure.message, failure.message
    assert await footprint(pg_pool, data["application_id"]) == NOTHING


async def test_an_update_with_a_control_character_is_refused(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """A NUL in a review's comment is refused as InvalidInput; nothing is recorded and the review goes on."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    status = await assigned(dev_client, app.application_id)
    assert status.review is not None
    reviewer = status.review.assignments[0].reviewer_id
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await send_update(handle, "submit_review", {**review(reviewer), "comment": "fine\u0000"})
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == Refusal.INVALID_INPUT
    assert "comment" in cause.message
    assert "U+0000" in cause.message
    assert (await dev_client.status(app.application_id)).review.submitted_by == ()  # type: ignore[union-attr]
