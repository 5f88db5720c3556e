"""The Exchange workflow end to end: real activities, a real Postgres ledger, real Temporal servers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from clients.client import DecisionRefused, DuplicateApplication, ExchangeClient, InvalidInput
from ledger.store import LedgerStore
from schemas.ids import exchange_workflow_id
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import Fund, agree, approve, result_of, until, uploaded_evidence, validate, wait_for_stage
from tests.workflows.histories import record, replay_and_maybe_record


async def _balance(store: LedgerStore, partnership_id: str) -> tuple[int, int, int, int]:
    rows = {b.partnership_id: b for b in await store.partnership_balances()}
    b = rows[partnership_id]
    return b.allocated_cents, b.held_cents, b.paid_cents, b.available_cents


def _handle(client: ExchangeClient, application_id: str) -> WorkflowHandle[object, object]:
    return client.temporal.get_workflow_handle(exchange_workflow_id(application_id))


async def _approve_and_sign(client: ExchangeClient, app_id: str) -> None:
    await wait_for_stage(client, app_id, Stage.REVIEW)
    await approve(client, app_id)
    await wait_for_stage(client, app_id, Stage.AGREEMENT)
    await agree(client, app_id)


async def test_happy_path_reaches_paid_with_the_grant_posted(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
    pg_pool: asyncpg.Pool,
) -> None:
    """An eligible exchange weeks ahead goes through every stage to PAID; 950 EUR (France) is posted and paid once."""
    partnership = await funded_partnership(1_000_000)
    app = application(visitor_partnership_id=partnership)
    await ts_client.start_exchange(app)
    await _approve_and_sign(ts_client, app.application_id)
    assert await _balance(ledger_store, partnership) == (1_000_000, 95_000, 0, 905_000)

    await time_skipping_env.sleep(timedelta(days=40))  # past the stay: durable timers fire
    await wait_for_stage(ts_client, app.application_id, Stage.REPORTING)
    await ts_client.submit_report(
        app.application_id,
        {
            "actor_id": "visitor-vera",
            "summary": "Done.",
            "evidence": await uploaded_evidence(pg_pool, app.application_id),
        },
    )
    await validate(ts_client, app.application_id)
    status = await until(ts_client, app.application_id, lambda s: s.payment_order_id is not None, "the payment order")
    await ts_client.confirm_payment(
        app.application_id,
        {
            "payment_order_id": status.payment_order_id,
            "amount_cents": status.paid_cents,
            "payment_reference": "SEPA-1",
            "confirmed_by": "finance-fia",
        },
    )

    outcome = await result_of(ts_client, app.application_id)
    assert (outcome.stage, outcome.paid_cents, outcome.grant_cents) == (Stage.PAID, 95_000, 95_000)
    assert await _balance(ledger_store, partnership) == (1_000_000, 0, 95_000, 905_000)
    kinds = [t.kind.value for t in await ledger_store.exchange_history(app.application_id)]
    assert sorted(kinds) == ["hold", "pay_out", "post"]
    visit = await pg_pool.fetchrow(
        "SELECT released_at FROM organisation_visits WHERE application_id = $1", app.application_id
    )
    assert visit is not None
    assert visit["released_at"] is None
    await replay_and_maybe_record(_handle(ts_client, app.application_id), "exchange_paid")
    stages = [t.stage for t in (await ts_client.status(app.application_id)).history]
    assert stages == [
        Stage.SUBMITTED,
        Stage.SCREENING,
        Stage.REVIEW,
        Stage.FUNDING,
        Stage.AGREEMENT,
        Stage.TRAVEL,
        Stage.REPORTING,
        Stage.PAYMENT,
        Stage.PAID,
    ]


async def test_cancellation_returns_the_held_money_to_the_budget(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund, pg_pool: asyncpg.Pool
) -> None:
    """An officer cancelling during TRAVEL voids the hold: the budget is whole again, and (policy 2022.1)
    the organisation gets its one visit back (R7)."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await ts_client.start_exchange(app)
    await _approve_and_sign(ts_client, app.application_id)
    assert await _balance(ledger_store, partnership) == (500_000, 95_000, 0, 405_000)

    await ts_client.cancel(app.application_id, {"actor_id": "officer-olga", "reason": "host closed"})
    outcome = await result_of(ts_client, app.application_id)
    assert outcome.stage == Stage.CANCELLED
    assert await _balance(ledger_store, partnership) == (500_000, 0, 0, 500_000)
    released = await pg_pool.fetchval(
        "SELECT release_reason FROM organisation_visits WHERE application_id = $1", app.application_id
    )
    assert released == "CANCELLED"
    await replay_and_maybe_record(_handle(ts_client, app.application_id), "exchange_cancelled")
    with pytest.raises(DecisionRefused):
        await ts_client.cancel(app.application_id, {"actor_id": "officer-olga", "reason": "again"})


async def test_a_partnership_without_budget_waitlists_then_expires_holding_nothing(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
) -> None:
    """With 100 EUR left, a 950 EUR grant waits on the waitlist, then EXPIRES at its deadline, nothing held."""
    partnership = await funded_partnership(10_000)
    app = application(visitor_partnership_id=partnership)
    await ts_client.start_exchange(app)
    await wait_for_stage(ts_client, app.application_id, Stage.REVIEW)
    await approve(ts_client, app.application_id)
    status = await wait_for_stage(ts_client, app.application_id, Stage.WAITLISTED)
    assert "waitlist" in status.deadlines

    await time_skipping_env.sleep(timedelta(days=61))  # past the 60-day waitlist deadline
    outcome = await result_of(ts_client, app.application_id)
    assert outcome.stage == Stage.EXPIRED
    assert await _balance(ledger_store, partnership) == (10_000, 0, 0, 10_000)
    await record(ts_client, app.application_id, "exchange_expired")


async def test_an_ineligible_application_is_closed_with_every_reason(ts_client: ExchangeClient) -> None:
    """Screening refuses a same-country exchange (R5) and the outcome names the rule and field."""
    app = application()
    app = app.model_copy(update={"host": app.host.model_copy(update={"country": "PL"})})
    await ts_client.start_exchange(app)
    outcome = await result_of(ts_client, app.application_id)
    assert outcome.stage == Stage.INELIGIBLE
    assert "R5 (host.country)" in outcome.reason
    await record(ts_client, app.application_id, "exchange_ineligible")


async def test_a_start_with_bad_input_is_refused_naming_the_field(ts_client: ExchangeClient) -> None:
    """Bad input never starts a workflow: the error names each field and its rule."""
    data = application().model_dump(mode="json")
    data["visitor"]["country"] = "Poland"
    del data["host"]["latitude"]
    with pytest.raises(InvalidInput) as refused:
        await ts_client.start_exchange(data)
    assert {field for field, _ in refused.value.errors} == {"visitor.country", "host.latitude"}
    assert "ISO 3166-1 alpha-2" in str(refused.value)

    reversed_dates = application().model_dump(mode="json") | {"start_date": "2030-03-10", "end_date": "2030-03-01"}
    with pytest.raises(InvalidInput, match="end_date must not be before start_date"):
        await ts_client.start_exchange(reversed_dates)
    with pytest.raises(InvalidInput, match="submitted_at"):
        await ts_client.start_exchange(application(submitted_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()))


async def test_a_duplicate_application_id_is_refused(ts_client: ExchangeClient) -> None:
    """A second start with the same application id is refused with a clear error, even after the first ended."""
    app = application()
    app = app.model_copy(update={"host": app.host.model_copy(update={"country": "PL"})})  # ends at screening
    await ts_client.start_exchange(app)
    with pytest.raises(DuplicateApplication, match=app.application_id):
        await ts_client.start_exchange(app)
    await result_of(ts_client, app.application_id)
    with pytest.raises(DuplicateApplication):
        await ts_client.start_exchange(app)


async def test_two_applications_of_one_organisation_cannot_both_reach_funding(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund
) -> None:
    """R7: two approved applications of the same visiting organisation; one is funded, the other INELIGIBLE (R7)."""
    partnership = await funded_partnership(1_000_000)
    first = application(visitor_partnership_id=partnership)
    second = application(visitor_partnership_id=partnership, visitor=first.visitor.model_dump())
    for app in (first, second):
        await ts_client.start_exchange(app)
        await wait_for_stage(ts_client, app.application_id, Stage.REVIEW)
    await asyncio.gather(*(approve(ts_client, app.application_id) for app in (first, second)))
    outcomes = {}
    for app in (first, second):
        outcomes[app.application_id] = await until(
            ts_client,
            app.application_id,
            lambda s: s.stage not in (Stage.REVIEW, Stage.FUNDING),
            "a stage past FUNDING",
        )
    stages = sorted(s.stage.value for s in outcomes.values())
    assert stages == ["AGREEMENT", "INELIGIBLE"]
    loser = next(s for s in outcomes.values() if s.stage is Stage.INELIGIBLE)
    assert [f.rule for f in loser.screening_failures] == ["R7"]
    assert await _balance(ledger_store, partnership) == (1_000_000, 95_000, 0, 905_000)


async def test_a_withdrawn_exchange_gives_the_organisation_its_visit_back(
    ts_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """R7: after a withdrawal before the stay, the same organisation's next application can be funded."""
    partnership = await funded_partnership(1_000_000)
    first = application(visitor_partnership_id=partnership)
    await ts_client.start_exchange(first)
    await wait_for_stage(ts_client, first.application_id, Stage.REVIEW)
    await approve(ts_client, first.application_id)
    await wait_for_stage(ts_client, first.application_id, Stage.AGREEMENT)
    await ts_client.withdraw(first.application_id, {"actor_id": "visitor-vera", "reason": "traveller ill"})
    assert (await result_of(ts_client, first.application_id)).stage == Stage.WITHDRAWN
    await record(ts_client, first.application_id, "exchange_withdrawn")

    second = application(visitor_partnership_id=partnership, visitor=first.visitor.model_dump())
    await ts_client.start_exchange(second)
    await wait_for_stage(ts_client, second.application_id, Stage.REVIEW)
    await approve(ts_client, second.application_id)
    await wait_for_stage(ts_client, second.application_id, Stage.AGREEMENT)
