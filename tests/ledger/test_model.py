"""A stateful property test: random sequences of ledger operations against an in-memory model.

Hypothesis drives allocate, hold, post (all or part), void, re-hold and pay-out with amounts that often
overrun the budget or the hold, plus exact repeats of earlier requests (replays), conflicting reuses
of their keys, bad amounts and ids that name no hold. After every step the totals of every account the
example touched (and the programme and payouts accounts) must equal the model's, and every call must
have returned exactly what the model predicts: the transfer, or the typed refusal with its fields.
After every example the full ledger check must pass.

Hypothesis runs synchronously, so the machine runs the store's coroutines on a dedicated event loop in
a background thread that owns the asyncpg pool (asyncio.run_coroutine_threadsafe). The test has its own
database; each example uses fresh ids, and the shared programme and payouts accounts are compared as
changes since the example began.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.checks import check_ledger
from ledger.errors import (
    MAX_AMOUNT_CENTS,
    AmountExceedsHold,
    BudgetExhausted,
    HoldAlreadyResolved,
    HoldNotFound,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    LedgerError,
    PayoutExceedsPosted,
    UnknownAccount,
)
from ledger.migrate import apply_migrations
from ledger.store import LedgerStore
from schemas.ledger import Transfer, TransferKind
from workers.devstack import create_database, drop_database

T = TypeVar("T")

EXAMPLES = 50
STEPS = 40
PARTNERSHIPS = 3
EXCHANGES = 5
MISSING_HOLD_ID = 2**62
amounts = st.integers(min_value=1, max_value=60_000)


class LoopThread:
    """An event loop in a daemon thread, for running coroutines from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ledger-model-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Env:
    runner: LoopThread
    pool: asyncpg.Pool
    store: LedgerStore


# The model ------------------------------------------------------------------------------------------------

Totals = list[int]  # [debits_pending, debits_posted, credits_pending, credits_posted]


@dataclass(frozen=True)
class Request:
    """One call, normalised the way the ledger compares requests (post "all" = post the hold's amount)."""

    op: str
    args: tuple[Any, ...]


@dataclass
class Hold:
    budget: str
    exchange: str
    amount_cents: int
    resolution: tuple[str, int] | None = None  # (kind, transfer id)


@dataclass
class Model:
    accounts: dict[str, Totals] = field(default_factory=dict)
    exchange_partnership: dict[str, str] = field(default_factory=dict)
    holds: dict[int, Hold] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)  # transfer id -> kind
    done: dict[str, tuple[Request, Transfer]] = field(default_factory=dict)

    def totals(self, code: str) -> Totals:
        return self.accounts.setdefault(code, [0, 0, 0, 0])

    def available(self, code: str) -> int:
        dp, dpo, _, cpo = self.accounts[code]
        return cpo - dpo - dp


class LedgerMachine(RuleBasedStateMachine):
    """Drives the store and the model side by side. Subclassed per test run to bind `env`."""

    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        self.prefix = uuid.uuid4().hex[:8]
        self.model = Model()
        self.keys = 0
        self.last_id = 0
        self.baseline = self._read_shared()

    # Helpers ----------------------------------------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.env.runner.run(coroutine)

    def _read_shared(self) -> dict[str, Totals]:
        rows = self._run(
            self.env.pool.fetch(
                """SELECT code, debits_pending::bigint, debits_posted::bigint, credits_pending::bigint,
                          credits_posted::bigint FROM ledger_accounts WHERE code IN ('programme', 'payouts')"""
            )
        )
        return {row[0]: [row[1], row[2], row[3], row[4]] for row in rows}

    def partnership(self, n: int) -> str:
        return f"{self.prefix}-p{n}"

    def exchange(self, n: int) -> str:
        return f"{self.prefix}-e{n}"

    def new_key(self) -> str:
        self.keys += 1
        return f"{self.prefix}:{self.keys}"

    def call(self, request: Request, key: str) -> Transfer | LedgerError:
        store = self.env.store
        op, args = request.op, request.args
        coroutine: Coroutine[Any, Any, Transfer]
        if op == "allocate":
            coroutine = store.allocate(idempotency_key=key, partnership_id=args[0], amount_cents=args[1])
        elif op == "hold":
            coroutine = store.hold(
                idempotency_key=key, partnership_id=args[0], application_id=args[1], amount_cents=args[2]
            )
        elif op == "post":
            coroutine = store.post(idempotency_key=key, hold_id=args[0], amount_cents=args[1])
        elif op == "void":
            coroutine = store.void(idempotency_key=key, hold_id=args[0])
        elif op == "rehold":
            coroutine = store.rehold(idempotency_key=key, hold_id=args[0], amount_cents=args[1])
        else:
            coroutine = store.pay_out(idempotency_key=key, application_id=args[0], amount_cents=args[1])
        try:
            return self._run(coroutine)
        except LedgerError as error:
            return error

    def normalise(self, request: Request) -> Request:
        if request.op == "post" and request.args[1] is None:
            hold = self.model.holds.get(request.args[0])
            if hold is not None:
                return Request("post", (request.args[0], hold.amount_cents))
        return request

    def expect_refusal(self, outcome: Transfer | LedgerError, kind: type[LedgerError], **fields: Any) -> None:
        assert isinstance(outcome, kind), f"expected {kind.__name__}, got {outcome!r}"
        assert type(outcome) is kind, f"expected {kind.__name__}, got {outcome!r}"
        for name, value in fields.items():
            assert outcome.fields[name] == value, (name, outcome.fields, fields)

    def expect_booking(
        self,
        outcome: Transfer | LedgerError,
        key: str,
        kind: TransferKind,
        debit: str,
        credit: str,
        amount: int,
        pending_id: int | None = None,
    ) -> Transfer:
        assert isinstance(outcome, Transfer), f"expected a {kind} booking, got {outcome!r}"
        assert not outcome.replayed
        assert outcome.idempotency_key == key
        assert (outcome.kind, outcome.debit_account, outcome.credit_account) == (kind, debit, credit)
        assert (outcome.amount_cents, outcome.pending_id) == (amount, pending_id)
        assert outcome.id > self.last_id, "transfer ids grow"
        self.last_id = outcome.id
        self.model.kinds[outcome.id] = kind.value
        return outcome

    def submit(self, request: Request, key: str | None = None) -> Transfer | LedgerError:
        """Call the store and check the outcome against the model; apply it to the model."""
        key = key or self.new_key()
        normalised = self.normalise(request)
        outcome = self.call(request, key)
        if key in self.model.done:
            earlier, result = self.model.done[key]
            if earlier == normalised:
                assert isinstance(outcome, Transfer), outcome
                assert outcome.replayed, outcome
                assert outcome.model_dump(exclude={"replayed"}) == result.model_dump(exclude={"replayed"})
            else:
                self.expect_refusal(outcome, IdempotencyConflict, idempotency_key=key)
            return outcome
        handler = getattr(self, f"_expect_{request.op}")
        handler(outcome, key, *request.args)
        if isinstance(outcome, Transfer):
            self.model.done[key] = (normalised, outcome)
        return outcome

    # What each operation must do (mirrors the order of checks in the SQL functions) ----------------------

    def _expect_allocate(self, outcome: Transfer | LedgerError, key: str, partnership: str, amount: int) -> None:
        budget = f"budget:{partnership}"
        self.expect_booking(outcome, key, TransferKind.ALLOCATE, "programme", budget, amount)
        self.model.totals(budget)[3] += amount
        self.model.totals("programme")[1] += amount

    def _expect_hold(
        self, outcome: Transfer | LedgerError, key: str, partnership: str, exchange: str, amount: int
    ) -> None:
        budget, account = f"budget:{partnership}", f"exchange:{exchange}"
        owner = self.model.exchange_partnership.get(exchange, partnership)
        if owner != partnership:
            self.expect_refusal(outcome, InvalidRequest, field="partnership_id")
        elif budget not in self.model.accounts:
            self.expect_refusal(outcome, UnknownAccount, account=budget)
        elif self.model.available(budget) < amount:
            self.expect_refusal(
                outcome,
                BudgetExhausted,
                partnership_id=partnership,
                requested_cents=amount,
                available_cents=self.model.available(budget),
            )
        else:
            transfer = self.expect_booking(outcome, key, TransferKind.HOLD, budget, account, amount)
            self.model.exchange_partnership[exchange] = partnership
            self.model.totals(budget)[0] += amount
            self.model.totals(account)[2] += amount
            self.model.holds[transfer.id] = Hold(budget, account, amount)

    def _refuse_unless_open_hold(self, outcome: Transfer | LedgerError, hold_id: int) -> Hold | None:
        hold = self.model.holds.get(hold_id)
        if hold is None:
            self.expect_refusal(outcome, HoldNotFound, hold_id=hold_id, actual_kind=self.model.kinds.get(hold_id))
            return None
        return hold

    def _refuse_if_resolved(self, outcome: Transfer | LedgerError, hold_id: int, hold: Hold) -> bool:
        if hold.resolution is None:
            return False
        self.expect_refusal(
            outcome,
            HoldAlreadyResolved,
            hold_id=hold_id,
            resolution_kind=hold.resolution[0],
            resolution_id=hold.resolution[1],
        )
        return True

    def _expect_post(self, outcome: Transfer | LedgerError, key: str, hold_id: int, amount: int | None) -> None:
        hold = self._refuse_unless_open_hold(outcome, hold_id)
        if hold is None:
            return
        posted = hold.amount_cents if amount is None else amount
        if posted > hold.amount_cents:
            self.expect_refusal(
                outcome, AmountExceedsHold, hold_id=hold_id, requested_cents=posted, hold_cents=hold.amount_cents
            )
            return
        if self._refuse_if_resolved(outcome, hold_id, hold):
            return
        transfer = self.expect_booking(outcome, key, TransferKind.POST, hold.budget, hold.exchange, posted, hold_id)
        hold.resolution = ("post", transfer.id)
        budget, exchange = self.model.accounts[hold.budget], self.model.accounts[hold.exchange]
        budget[0] -= hold.amount_cents
        budget[1] += posted
        exchange[2] -= hold.amount_cents
        exchange[3] += posted

    def _expect_void(self, outcome: Transfer | LedgerError, key: str, hold_id: int) -> None:
        hold = self._refuse_unless_open_hold(outcome, hold_id)
        if hold is None or self._refuse_if_resolved(outcome, hold_id, hold):
            return
        transfer = self.expect_booking(
            outcome, key, TransferKind.VOID, hold.budget, hold.exchange, hold.amount_cents, hold_id
        )
        hold.resolution = ("void", transfer.id)
        self.model.accounts[hold.budget][0] -= hold.amount_cents
        self.model.accounts[hold.exchange][2] -= hold.amount_cents

    def _expect_rehold(self, outcome: Transfer | LedgerError, key: str, hold_id: int, amount: int) -> None:
        hold = self._refuse_unless_open_hold(outcome, hold_id)
        if hold is None or self._refuse_if_resolved(outcome, hold_id, hold):
            return
        room = self.model.available(hold.budget) + hold.amount_cents
        if room < amount:
            self.expect_refusal(
                outcome,
                BudgetExhausted,
                partnership_id=hold.budget.removeprefix("budget:"),
                requested_cents=amount,
                available_cents=room,
            )
            return
        transfer = self.expect_booking(outcome, key, TransferKind.HOLD, hold.budget, hold.exchange, amount)
        void_id = self._run(
            self.env.pool.fetchval(
                "SELECT id FROM ledger_transfers WHERE pending_id = $1 AND companion AND idempotency_key = $2",
                hold_id,
                key,
            )
        )
        assert void_id is not None, "the re-hold's void is booked, before the new hold"
        assert void_id < transfer.id, "the re-hold's void is booked, before the new hold"
        self.model.kinds[void_id] = "void"
        hold.resolution = ("void", void_id)
        self.model.accounts[hold.budget][0] += amount - hold.amount_cents
        self.model.accounts[hold.exchange][2] += amount - hold.amount_cents
        self.model.holds[transfer.id] = Hold(hold.budget, hold.exchange, amount)

    def _expect_pay_out(self, outcome: Transfer | LedgerError, key: str, exchange: str, amount: int) -> None:
        account = f"exchange:{exchange}"
        if account not in self.model.accounts:
            self.expect_refusal(outcome, UnknownAccount, account=account)
        elif self.model.available(account) < amount:
            self.expect_refusal(
                outcome,
                PayoutExceedsPosted,
                application_id=exchange,
                requested_cents=amount,
                available_cents=self.model.available(account),
            )
        else:
            self.expect_booking(outcome, key, TransferKind.PAY_OUT, account, "payouts", amount)
            self.model.accounts[account][1] += amount
            self.model.totals("payouts")[3] += amount

    # Rules ------------------------------------------------------------------------------------------------

    @initialize(amounts=st.lists(st.integers(50_000, 200_000), min_size=PARTNERSHIPS - 1, max_size=PARTNERSHIPS - 1))
    def seed_budgets(self, amounts: list[int]) -> None:
        """Every partnership but the last starts funded; the last stays unknown until an allocate hits it."""
        for n, amount in enumerate(amounts):
            self.submit(Request("allocate", (self.partnership(n), amount)))

    @rule(partnership=st.integers(0, PARTNERSHIPS - 1), amount=amounts)
    def allocate(self, partnership: int, amount: int) -> None:
        self.submit(Request("allocate", (self.partnership(partnership), amount)))

    @rule(data=st.data(), partnership=st.integers(0, PARTNERSHIPS - 1), exchange=st.integers(0, EXCHANGES - 1))
    def hold(self, data: st.DataObject, partnership: int, exchange: int) -> None:
        """Usually the exchange's own budget and an amount it can cover; sometimes not."""
        owner = self.model.exchange_partnership.get(self.exchange(exchange))
        if owner is not None and data.draw(st.integers(0, 4)):
            partnership = int(owner.rsplit("-p", 1)[1])
        budget = f"budget:{self.partnership(partnership)}"
        room = self.model.available(budget) if budget in self.model.accounts else 1_000
        amount = self._amount_near(data, min(room, 60_000))
        self.submit(Request("hold", (self.partnership(partnership), self.exchange(exchange), amount)))

    def _some_hold(self, data: st.DataObject) -> int:
        """Mostly an open hold; sometimes a resolved one, another kind of transfer, or a missing id."""
        open_holds = sorted(i for i, h in self.model.holds.items() if h.resolution is None)
        resolved = sorted(i for i, h in self.model.holds.items() if h.resolution is not None)
        not_holds = [i for i, kind in sorted(self.model.kinds.items()) if kind != "hold"][:3]
        pick = data.draw(st.integers(0, 9))
        if open_holds and pick < 7:
            return data.draw(st.sampled_from(open_holds))
        if resolved and pick < 9:
            return data.draw(st.sampled_from(resolved))
        return data.draw(st.sampled_from([MISSING_HOLD_ID, *not_holds]))

    def _amount_near(self, data: st.DataObject, limit_cents: int) -> int:
        """An amount within a limit (usually) or just above it (sometimes)."""
        if limit_cents >= 1 and data.draw(st.integers(0, 3)):
            return data.draw(st.integers(1, limit_cents))
        return data.draw(st.integers(max(limit_cents, 0) + 1, max(limit_cents, 0) + 20_000))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data(), post_all=st.booleans())
    def post(self, data: st.DataObject, post_all: bool) -> None:
        hold_id = self._some_hold(data)
        hold = self.model.holds.get(hold_id)
        amount = None if post_all else self._amount_near(data, hold.amount_cents if hold else 1_000)
        self.submit(Request("post", (hold_id, amount)))

    @precondition(lambda self: any(h.resolution is None for h in self.model.holds.values()))
    @rule(data=st.data(), post_all=st.booleans(), pay_all=st.booleans())
    def settle(self, data: st.DataObject, post_all: bool, pay_all: bool) -> None:
        """The PAYMENT stage: post an open hold (all or part), then pay out what was posted (all or part)."""
        hold_id = data.draw(st.sampled_from(sorted(i for i, h in self.model.holds.items() if h.resolution is None)))
        hold = self.model.holds[hold_id]
        amount = None if post_all else data.draw(st.integers(1, hold.amount_cents))
        posted = self.submit(Request("post", (hold_id, amount)))
        assert isinstance(posted, Transfer)
        exchange = hold.exchange.removeprefix("exchange:")
        payable = self.model.available(hold.exchange)
        paid = payable if pay_all else data.draw(st.integers(1, payable))
        self.submit(Request("pay_out", (exchange, paid)))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        self.submit(Request("void", (self._some_hold(data),)))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def rehold(self, data: st.DataObject) -> None:
        hold_id = self._some_hold(data)
        hold = self.model.holds.get(hold_id)
        room = self.model.available(hold.budget) + hold.amount_cents if hold else 1_000
        self.submit(Request("rehold", (hold_id, self._amount_near(data, room))))

    @rule(data=st.data(), exchange=st.integers(0, EXCHANGES - 1))
    def pay_out(self, data: st.DataObject, exchange: int) -> None:
        """Mostly from an exchange with money posted to it; sometimes from any (maybe unknown) exchange."""
        funded = sorted(e for e in self.model.exchange_partnership if self.model.available(f"exchange:{e}") > 0)
        name = self.exchange(exchange)
        if data.draw(st.integers(0, 4)) and funded:
            name = data.draw(st.sampled_from(funded))
        account = f"exchange:{name}"
        payable = self.model.available(account) if account in self.model.accounts else 0
        self.submit(Request("pay_out", (name, self._amount_near(data, payable))))

    @precondition(lambda self: self.model.done)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """The same key and the same request again: the original transfer, replayed, nothing booked."""
        key = data.draw(st.sampled_from(sorted(self.model.done)))
        request, _ = self.model.done[key]
        if request.op == "post" and data.draw(st.booleans()):
            request = Request("post", (request.args[0], None))  # "all" is the same request as the exact amount
        self.submit(request, key)

    @precondition(lambda self: self.model.done)
    @rule(data=st.data(), other_operation=st.booleans())
    def conflicting_reuse(self, data: st.DataObject, other_operation: bool) -> None:
        """The same key for a different request: IdempotencyConflict, nothing booked."""
        key = data.draw(st.sampled_from(sorted(self.model.done)))
        request, _ = self.model.done[key]
        first = request.args[0]
        if other_operation and request.op != "allocate":
            changed = Request("allocate", (self.partnership(0), 1))
        elif request.op == "void":
            changed = Request("void", (MISSING_HOLD_ID,))
        elif request.op == "hold":
            changed = Request("hold", (first, request.args[1], request.args[2] + 1))
        else:
            changed = Request(request.op, (first, request.args[-1] + 1))
        self.submit(changed, key)

    @rule(
        op=st.sampled_from(["allocate", "hold", "post", "rehold", "pay_out"]),
        amount=st.sampled_from([0, -1, -50_000, MAX_AMOUNT_CENTS + 1]),
    )
    def bad_amount(self, op: str, amount: int) -> None:
        """A zero, negative or oversized amount: InvalidAmount naming amount_cents, nothing booked."""
        hold_id = min(self.model.holds, default=MISSING_HOLD_ID)
        args = {
            "allocate": (self.partnership(0), amount),
            "hold": (self.partnership(0), self.exchange(0), amount),
            "post": (hold_id, amount),
            "rehold": (hold_id, amount),
            "pay_out": (self.exchange(0), amount),
        }[op]
        outcome = self.call(Request(op, args), self.new_key())
        self.expect_refusal(outcome, InvalidAmount, field="amount_cents", amount_cents=amount)

    # After every step ---------------------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        rows = self._run(
            self.env.pool.fetch(
                """SELECT code, debits_pending::bigint, debits_posted::bigint, credits_pending::bigint,
                          credits_posted::bigint
                     FROM ledger_accounts
                    WHERE starts_with(coalesce(partnership_id, exchange_id, ''), $1)
                       OR code IN ('programme', 'payouts')""",
                f"{self.prefix}-",
            )
        )
        actual = {row[0]: [row[1], row[2], row[3], row[4]] for row in rows}
        for shared in ("programme", "payouts"):
            actual[shared] = [now - then for now, then in zip(actual[shared], self.baseline[shared], strict=True)]
        expected = {code: totals for code, totals in self.model.accounts.items()}
        for shared in ("programme", "payouts"):
            expected.setdefault(shared, [0, 0, 0, 0])
        assert actual == expected
        balances = self._run(self.env.store.partnership_balances())
        mine = {b.partnership_id: b for b in balances if b.partnership_id.startswith(f"{self.prefix}-")}
        for code, (dp, dpo, _, cpo) in self.model.accounts.items():
            if code.startswith("budget:"):
                b = mine[code.removeprefix("budget:")]
                actual_balance = (b.allocated_cents, b.held_cents, b.paid_cents, b.available_cents)
                assert actual_balance == (cpo, dp, dpo, cpo - dp - dpo)

    def teardown(self) -> None:
        report = self._run(check_ledger(self.env.pool))
        assert report.ok, [c for c in report.checks if not c.ok]


async def _create_pool(dsn: str) -> asyncpg.Pool:
    # Called on the loop thread: an asyncpg pool belongs to the loop that creates it.
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)


@pytest.fixture(scope="module")
def model_env(pg_admin_dsn: str) -> Iterator[Env]:
    runner = LoopThread()
    dsn = runner.run(create_database(pg_admin_dsn, prefix="cx_model"))
    try:
        runner.run(apply_migrations(dsn))
        pool = runner.run(_create_pool(dsn))
        try:
            yield Env(runner, pool, LedgerStore(pool))
        finally:
            runner.run(pool.close())
    finally:
        runner.run(drop_database(pg_admin_dsn, dsn))
        runner.stop()


def test_ledger_matches_its_model(model_env: Env) -> None:
    """Random sequences of every operation, replays and conflicting reuses keep the ledger equal to its model."""

    class BoundLedgerMachine(LedgerMachine):
        env = model_env

    run_state_machine_as_test(
        BoundLedgerMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
