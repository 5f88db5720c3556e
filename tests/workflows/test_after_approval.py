"""After approval: match confirmations and reminders, date amendments with the hold, attendance and no-shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from clients.client import DecisionRefused, ExchangeClient, InvalidInput
from ledger.store import LedgerStore
from schemas.exchange import Party
from schemas.stages import Stage
from tests.factories import application, full_week_ahead
from tests.workflows.conftest import Fund, agree, approve, result_of, until, uploaded_evidence, validate, wait_for_stage
from tests.workflows.histories import record


async def _balance(store: LedgerStore, partnership_id: str) -> tuple[int, int, int]:
    b = {b.partnership_id: b for b in await store.partnership_balances()}[partnership_id]
    return b.held_cents, b.paid_cents, b.available_cents


async def _in_agreement(client: ExchangeClient, partnership: str, start: date, end: date) -> str:
    app = application(visitor_partnership_id=partnership, start_date=start.isoformat(), end_date=end.isoformat())
    await client.start_exchange(app)
    await approve(client, app.application_id)
    await wait_for_stage(client, app.application_id, Stage.AGREEMENT)
    return app.application_id


async def test_signatures_alone_do_not_bind_without_the_match_and_reminders_precede_the_lapse(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
    pg_pool: asyncpg.Pool,
) -> None:
    """R10: four signatures without the match confirmations stay in AGREEMENT; two reminders, then LAPSED, voided."""
    partnership = await funded_partnership(1_000_000)
    start, end = full_week_ahead(4, "FR")
    app_id = await _in_agreement(ts_client, partnership, start, end)
    parties = (await ts_client.status(app_id)).parties
    for party in Party:
        await ts_client.sign_commitment(
            app_id, {"actor_id": f"signer-{party.value}", "party": party.value, "on_behalf_of": parties[party]}
        )
    host = {"actor_id": "host-contact", "side": "host", "on_behalf_of": parties[Party.HOST_ORGANISATION]}
    await ts_client.decide(app_id, "confirm_match", host)
    with pytest.raises(DecisionRefused, match="already confirmed"):
        await ts_client.decide(app_id, "confirm_match", host)
    assert (await ts_client.status(app_id)).stage is Stage.AGREEMENT
    await time_skipping_env.sleep(timedelta(days=15))
    outcome = await result_of(ts_client, app_id)
    assert outcome.stage is Stage.LAPSED
    assert "match confirmation by visitor" in outcome.reason
    reminders = await pg_pool.fetch(
        "SELECT details FROM audit_events WHERE application_id = $1 AND event = 'agreement_reminder'", app_id
    )
    assert len(reminders) == 2
    assert await _balance(ledger_store, partnership) == (0, 0, 1_000_000)
    await record(ts_client, app_id, "exchange_lapsed")


async def test_amended_dates_move_the_travel_timer_and_a_shorter_stay_releases_money(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund
) -> None:
    """Later dates keep the price; a 3-working-day stay halves the grant and the hold follows in one transaction."""
    partnership = await funded_partnership(1_000_000)
    start, end = full_week_ahead(4, "FR")
    app_id = await _in_agreement(ts_client, partnership, start, end)
    await agree(ts_client, app_id)
    later_start, later_end = full_week_ahead(6, "FR")
    status = await ts_client.decide(
        app_id,
        "amend_dates",
        {"actor_id": "officer-olga", "start_date": later_start, "end_date": later_end, "reason": "host asked"},
    )
    assert (status.start_date, status.held_cents) == (later_start, 95_000)
    assert status.deadlines["stay_starts"].date() == later_start
    status = await ts_client.decide(
        app_id,
        "amend_dates",
        {
            "actor_id": "officer-olga",
            "start_date": later_start + timedelta(days=2),
            "end_date": later_end,
            "reason": "shorter agenda",
        },
    )
    assert (status.grant_cents, status.held_cents) == (47_500, 47_500)
    assert await _balance(ledger_store, partnership) == (47_500, 0, 952_500)
    kinds = [t.kind.value for t in await ledger_store.exchange_history(app_id)]
    assert kinds.count("hold") == 2
    assert kinds.count("void") == 1
    await record(ts_client, app_id, "exchange_dates_amended")


async def test_an_amendment_the_budget_cannot_cover_changes_nothing(
    ts_client: ExchangeClient, ledger_store: LedgerStore, funded_partnership: Fund
) -> None:
    """A 3-day stay (475 EUR) amended to 5 days (950 EUR) with 125 EUR left is refused; old dates and hold stay."""
    partnership = await funded_partnership(60_000)
    monday, friday = full_week_ahead(4, "FR")
    app_id = await _in_agreement(ts_client, partnership, monday + timedelta(days=2), friday)
    before = await ts_client.status(app_id)
    assert before.held_cents == 47_500
    with pytest.raises(DecisionRefused, match="cannot cover"):
        await ts_client.decide(
            app_id,
            "amend_dates",
            {"actor_id": "officer-olga", "start_date": monday, "end_date": friday, "reason": "longer agenda"},
        )
    with pytest.raises(DecisionRefused, match="R6"):
        await ts_client.decide(
            app_id,
            "amend_dates",
            {"actor_id": "officer-olga", "start_date": friday, "end_date": friday, "reason": "one day only"},
        )
    after = await ts_client.status(app_id)
    assert (after.start_date, after.end_date, after.held_cents, after.hold_transfer_id) == (
        before.start_date,
        before.end_date,
        before.held_cents,
        before.hold_transfer_id,
    )
    assert await _balance(ledger_store, partnership) == (47_500, 0, 12_500)


async def test_a_no_show_cancels_and_voids_while_attendance_reprices_a_shortened_stay(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    pg_pool: asyncpg.Pool,
    funded_partnership: Fund,
) -> None:
    """The host's no-show report cancels and voids; a confirmed shortened stay is paid at the re-priced amount."""
    partnership = await funded_partnership(1_000_000)
    start, end = full_week_ahead(4, "FR")
    no_show = await _in_agreement(ts_client, partnership, start, end)
    attended = await _in_agreement(ts_client, partnership, start, end)
    for app_id in (no_show, attended):
        await agree(ts_client, app_id)
        with pytest.raises(DecisionRefused, match="not started"):
            await ts_client.decide(app_id, "report_no_show", {"actor_id": "host-contact", "reason": "nobody came"})
    now = await time_skipping_env.get_current_time()
    await time_skipping_env.sleep(datetime.combine(start, time(12, 0), tzinfo=UTC) - now)  # into the stay
    for app_id in (no_show, attended):
        await until(ts_client, app_id, lambda s: s.stay_started, "the stay to start")
    await ts_client.decide(no_show, "report_no_show", {"actor_id": "host-contact", "reason": "nobody came"})
    assert (await result_of(ts_client, no_show)).stage is Stage.CANCELLED
    await record(ts_client, no_show, "exchange_no_show")
    await ts_client.decide(
        attended, "confirm_attendance", {"actor_id": "host-contact", "actual_end_date": start + timedelta(days=2)}
    )
    await time_skipping_env.sleep(timedelta(days=10))
    await wait_for_stage(ts_client, attended, Stage.REPORTING)
    never_uploaded = [{"name": "invoice.pdf", "kind": "travel_invoice", "sha256": "d" * 64, "size_bytes": 10}]
    with pytest.raises(DecisionRefused, match="never uploaded"):
        await ts_client.submit_report(
            attended, {"actor_id": "visitor-vera", "summary": "x", "evidence": never_uploaded}
        )
    assert not (await ts_client.status(attended)).report_submitted
    await ts_client.submit_report(
        attended,
        {"actor_id": "visitor-vera", "summary": "Done.", "evidence": await uploaded_evidence(pg_pool, attended)},
    )
    await validate(ts_client, attended)
    status = await until(ts_client, attended, lambda s: s.payment_order_id is not None, "the payment order")
    assert status.paid_cents == 47_500
    assert await _balance(ledger_store, partnership) == (0, 47_500, 952_500)


async def _in_reporting(client: ExchangeClient, env: WorkflowEnvironment, partnership: str) -> str:
    start, end = full_week_ahead(3, "FR")
    app_id = await _in_agreement(client, partnership, start, end)
    await agree(client, app_id)
    now = await env.get_current_time()
    await env.sleep(datetime.combine(end + timedelta(days=1), time(12, 0), tzinfo=UTC) - now)
    await wait_for_stage(client, app_id, Stage.REPORTING)
    return app_id


async def test_no_accepted_report_by_the_deadline_forfeits_and_voids(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
) -> None:
    """No report 30 days after the stay: FORFEITED, the hold goes back to the budget, reminders were sent."""
    partnership = await funded_partnership(1_000_000)
    app_id = await _in_reporting(ts_client, time_skipping_env, partnership)
    await time_skipping_env.sleep(timedelta(days=31))
    outcome = await result_of(ts_client, app_id)
    assert outcome.stage is Stage.FORFEITED
    assert outcome.paid_cents == 0
    assert await _balance(ledger_store, partnership) == (0, 0, 1_000_000)
    await record(ts_client, app_id, "exchange_forfeited")


async def test_a_returned_report_is_resubmitted_accepted_and_a_late_payment_raises_the_sla_alert(
    ts_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
    pg_pool: asyncpg.Pool,
) -> None:
    """The VOP returns a report with reasons; the resubmission is accepted; finance silent 10 days -> alert; PAID."""
    partnership = await funded_partnership(1_000_000)
    app_id = await _in_reporting(ts_client, time_skipping_env, partnership)
    evidence = await uploaded_evidence(pg_pool, app_id)
    await ts_client.submit_report(app_id, {"actor_id": "visitor-vera", "summary": "Short.", "evidence": evidence})
    with pytest.raises(InvalidInput, match="reasons"):  # refused before it reaches the workflow
        await ts_client.validate_report(app_id, {"actor_id": "vop-victor", "decision": "return"})
    await validate(ts_client, app_id, "return", "Add the accommodation invoice.")
    status = await until(ts_client, app_id, lambda s: not s.report_submitted, "the report returned")
    assert status.stage is Stage.REPORTING
    await ts_client.submit_report(app_id, {"actor_id": "visitor-vera", "summary": "Complete.", "evidence": evidence})
    await validate(ts_client, app_id)
    status = await until(ts_client, app_id, lambda s: s.payment_order_id is not None, "the payment order")
    await time_skipping_env.sleep(timedelta(days=11))
    status = await until(
        ts_client, app_id, lambda s: any(a.startswith("payment_sla_missed") for a in s.alerts), "the payment SLA alert"
    )
    await ts_client.confirm_payment(
        app_id,
        {
            "payment_order_id": status.payment_order_id,
            "amount_cents": status.paid_cents,
            "payment_reference": "SEPA-77",
            "confirmed_by": "finance",
        },
    )
    outcome = await result_of(ts_client, app_id)
    assert (outcome.stage, outcome.paid_cents) == (Stage.PAID, 95_000)
    assert await _balance(ledger_store, partnership) == (0, 95_000, 905_000)
    await record(ts_client, app_id, "exchange_report_returned_paid_late")
