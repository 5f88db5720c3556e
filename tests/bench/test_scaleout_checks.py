"""The scale-out bench's verdicts from rows (bench/scaleout_checks.py): lost, double, ratio, connections, exit code."""

from __future__ import annotations

from datetime import date

import pytest

from bench.api_actors import api_tokens
from bench.drivers import bench_application
from bench.finance_desk import CountedOrders
from bench.scaleout import with_application_name
from bench.scaleout_checks import (
    connection_peaks,
    describe_connections,
    double_payments,
    exit_code,
    lifecycle_progress,
    lost_exchanges,
    throughput_ratio,
)
from clients.api.static_tokens import parse_tokens


def test_an_exchange_not_paid_or_missing_from_the_read_model_is_lost() -> None:
    """Only PAID counts; an exchange the read model never saw is lost too, in the order started."""
    stages = {"a": "PAID", "b": "PAYMENT", "d": "PAID"}
    assert lost_exchanges(["a", "b", "c", "d"], stages) == ["b", "c"]
    assert lost_exchanges(["a", "d"], stages) == []


def test_one_post_one_payout_and_one_order_kept_once_is_no_double() -> None:
    """The normal payment: a post and a payout in the ledger, its order kept once by finance."""
    ledger = [("a", "post"), ("a", "pay_out"), ("b", "post"), ("b", "pay_out"), ("a", "hold"), ("a", "void")]
    doubles = double_payments(ledger, [("a", "po-a"), ("b", "po-b")])
    assert doubles.exchanges == set()
    assert doubles.describe() == ""


def test_a_second_post_or_payout_in_the_ledger_is_a_double() -> None:
    """Two posts (or two payouts) of one exchange: paid twice, whatever finance saw."""
    ledger = [("a", "post"), ("a", "post"), ("a", "pay_out"), ("b", "post"), ("b", "pay_out"), ("b", "pay_out")]
    doubles = double_payments(ledger, [])
    assert doubles.exchanges == {"a", "b"}
    assert doubles.ledger["a"]["post"] == 2
    assert doubles.ledger["b"]["pay_out"] == 2


def test_finance_keeping_an_order_twice_or_two_orders_of_one_exchange_is_a_double() -> None:
    """After the receiver's own dedup, an order kept twice would be paid twice; so would a second order."""
    receiver = [("a", "po-a"), ("a", "po-a"), ("b", "po-b"), ("b", "po-b2"), ("c", "po-c")]
    doubles = double_payments([], receiver)
    assert doubles.exchanges == {"a", "b"}
    assert doubles.receiver_repeats == {("a", "po-a"): 2}
    assert doubles.receiver_orders == {"b": ["po-b", "po-b2"]}
    assert "order po-a kept 2 times" in doubles.describe()


def test_the_finance_receivers_store_counts_every_order_it_keeps() -> None:
    """The stand-in for the stub's `received` dict records each store, also when it overwrites."""
    orders = CountedOrders()
    orders["a"] = {"payment_order_id": "po-a", "amount_cents": 1}
    orders["a"] = {"payment_order_id": "po-a", "amount_cents": 1}
    assert len(orders) == 1
    assert orders.stored == [("a", "po-a"), ("a", "po-a")]


def test_the_ratio_pairs_each_repeats_phases_and_gives_the_median_and_spread() -> None:
    """Repeat k's 3-worker rate over its own 1-worker rate; one repeat reads as one figure."""
    ratio = throughput_ratio([1.0, 2.0, 1.0], [2.5, 5.0, 2.0])
    assert ratio.per_repeat == (2.5, 2.5, 2.0)
    assert ratio.median == 2.5
    assert ratio.describe() == "2.50x median (min 2.00, max 2.50; 2.50, 2.50, 2.00)"
    assert throughput_ratio([2.0], [3.0]).describe() == "1.50x"
    with pytest.raises(ValueError, match="one rate of each phase"):
        throughput_ratio([1.0], [])
    with pytest.raises(ValueError, match="no throughput"):
        throughput_ratio([0.0], [1.0])


def test_connections_are_each_processes_peak_grouped_by_role() -> None:
    """Peaks per application_name over the samples; the line groups them by role, the name before its number."""
    samples = [{"worker-1": 3, "api-1": 1, "bench": 2}, {"worker-1": 5, "worker-2": 4, "api-1": 2, "api-2": 2}]
    peaks = connection_peaks(samples)
    assert peaks == {"worker-1": 5, "worker-2": 4, "api-1": 2, "api-2": 2, "bench": 2}
    line = describe_connections(peaks, 13, 300)
    assert line == "api 2/2, bench 2, worker 5/4; peak 13 of max_connections 300"


def test_the_exit_code_is_1_for_a_failed_run_2_for_a_broken_invariant_else_0() -> None:
    """A failed run says nothing of invariants; any lost, double or unclean ledger is 2."""
    assert exit_code(run_failed=False, lost=0, double=0, ledger_clean=True) == 0
    assert exit_code(run_failed=True, lost=0, double=0, ledger_clean=True) == 1
    assert exit_code(run_failed=False, lost=1, double=0, ledger_clean=True) == 2
    assert exit_code(run_failed=False, lost=0, double=1, ledger_clean=True) == 2
    assert exit_code(run_failed=False, lost=0, double=0, ledger_clean=False) == 2


def test_each_process_names_itself_to_postgres_in_its_dsn() -> None:
    """application_name is added to (or replaces the one in) the DSN's query, the rest kept."""
    assert (
        with_application_name("postgresql://u@h:5/db", "worker-1") == "postgresql://u@h:5/db?application_name=worker-1"
    )
    dsn = with_application_name("postgresql://u@h/db?sslmode=disable&application_name=x", "api-2")
    assert dsn == "postgresql://u@h/db?sslmode=disable&application_name=api-2"


def test_the_party_services_hold_every_organisation_within_the_apis_limit_per_principal() -> None:
    """600 applications have 1,200 organisations: two party services, each within 1,000 parties."""
    apps = [bench_application(f"t-{i:04d}", "epix", date(2026, 12, 1)) for i in range(600)]
    tokens = api_tokens(["epix-reviewer-1"], apps, ["epix"])
    assert len(set(tokens.party_service.values())) == 2
    assert set(tokens.party_service) == {o for a in apps for o in (a.visitor.organisation_id, a.host.organisation_id)}
    principals = parse_tokens(tokens.config)  # what `cx api` does with CX_API_TOKENS at start-up
    reviewer, officer = principals.find(tokens.for_reviewer("epix-reviewer-1")), principals.find(tokens.officer)
    assert reviewer is not None
    assert reviewer.subject == "epix-reviewer-1"
    assert officer is not None
    assert officer.role == "officer"


def test_progress_counts_stages_reached_so_a_batch_in_step_is_a_third_through_before_any_is_paid() -> None:
    """Stages reached over the batch: 0 before any projection, 1 when all are PAID, a third at AGREEMENT-ish,
    the waitlist counted as funding and an exchange ended elsewhere as not started."""
    assert lifecycle_progress([], 3) == 0
    assert lifecycle_progress(["PAID"] * 3, 3) == 1
    assert lifecycle_progress(["FUNDING", "WAITLISTED"], 2) == 3 / 8
    assert lifecycle_progress(["REJECTED", "PAID"], 2) == 1 / 2
    in_step = ["REVIEW"] * 10  # every exchange moving together: a quarter through, none PAID
    assert lifecycle_progress(in_step, 10) == 2 / 8
    with pytest.raises(ValueError, match="at least one"):
        lifecycle_progress([], 0)
