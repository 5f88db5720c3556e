"""Every update and signal of a running exchange fuzzed through a raw Temporal client (issue 16, item 4).

The caller is a bare temporalio Client with the SDK's default converter: plain JSON values, no pydantic,
as a Go or TypeScript service would send them. Hypothesis generates, for each message of the contract,
valid-shaped payloads from another actor, near-valid ones (the contract's example with a field dropped,
added or replaced by garbage) and garbage (any JSON value). Every update must be refused with a typed,
non-retryable ApplicationError (docs/contract.md, "Refusals") but those the contract lets any actor send
(`withdraw` and `cancel`, fuzzed last; `amend_dates` in AGREEMENT); every signal is dropped or ignored.
Two exchanges: one in REVIEW (nothing held: the ledger must not change at all; afterwards it still takes a
valid review) and one in AGREEMENT with its grant held (no ledger row changes but this exchange's, and only
through an accepted message: the void on the way out). Neither history holds a failed workflow task.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from clients.client import ExchangeClient
from schemas.errors import Refusal
from schemas.ids import exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import Stage
from tests.api.fuzzing import ledger_changes, ledger_snapshot, unaccounted
from tests.factories import application
from tests.waiting import within
from tests.workflows.conftest import (
    Fund,
    approve,
    assigned,
    result_of,
    review,
    send_update,
    wait_for_stage,
)

# Per message: 19 messages x 40 = 760 messages per CI run (about 12 s); `make fuzz` sends --fuzz-examples of each.
EXAMPLES_PER_MESSAGE = 40
MESSAGE_WITHIN_S = 15
REFUSALS = {refusal.value for refusal in Refusal}
# The contract lets any actor withdraw or cancel (docs/contract.md: the REST API and the back office decide
# who may; Temporal access is trusted), so a valid-shaped one is accepted and ends the exchange. These two
# are fuzzed last, after the proof that the exchange still takes a valid decision; every other update must
# be refused.
ENDING = frozenset({"withdraw", "cancel"})
# In AGREEMENT (and TRAVEL before the stay) `amend_dates` has no actor rule either: accepted, it re-prices and
# may re-hold this exchange's grant (docs/contract.md). Its effects are checked to stay on this exchange.
AMENDING = frozenset({"amend_dates"})
# Nobody on this exchange: a valid-shaped decision from them is refused, never applied.
STRANGERS = st.sampled_from(["fuzz-stranger", "rev-anna", "officer-olga", "vo-vera", "ho-hanna"])

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
GARBAGE = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def example_of(name: str) -> dict[str, Any]:
    model = {**UPDATES, **SIGNALS}[name]
    examples: list[dict[str, Any]] = model.model_json_schema()["examples"]
    return dict(examples[0])


@st.composite
def near_valid(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """The contract's example from a stranger, with one field dropped, added or replaced by garbage (or none)."""
    payload = example_of(name)
    if "actor_id" in payload:
        payload["actor_id"] = draw(STRANGERS)
    change = draw(st.sampled_from(["none", "drop", "add", "replace"]))
    key = draw(st.sampled_from(sorted(payload)))
    if change == "drop":
        payload.pop(key)
    elif change == "add":
        payload[draw(st.text(min_size=1, max_size=12))] = draw(GARBAGE)
    elif change == "replace":
        payload[key] = draw(GARBAGE)
    return payload


def payloads(name: str) -> st.SearchStrategy[Any]:
    return near_valid(name) | GARBAGE


class MessageFuzz:
    """Sends generated messages to one exchange from Hypothesis' thread; counts and checks each outcome."""

    def __init__(
        self, handle: WorkflowHandle[Any, Any], loop: asyncio.AbstractEventLoop, may_accept: frozenset[str] = ENDING
    ) -> None:
        """`may_accept`: the updates the contract lets any actor send in this stage; every other must be refused."""
        self.may_accept = may_accept
        self.handle = handle
        self.loop = loop
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=MESSAGE_WITHIN_S + 5)

    def update(self, name: str, payload: Any) -> None:
        try:
            self.call(within(self.handle.execute_update(name, payload), f"update {name}", MESSAGE_WITHIN_S))
        except WorkflowUpdateFailedError as failed:
            cause = failed.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable and cause.type in REFUSALS:
                self.outcomes[f"update refused {cause.type}"] += 1
                return
            self.wrong.append(f"{name} {json.dumps(payload)[:200]}: {cause!r}")
            return
        except RPCError as error:
            # Only after an ending update was accepted: the closed workflow takes no more updates.
            if name in ENDING and error.status is RPCStatusCode.NOT_FOUND:
                self.outcomes["update after the exchange closed"] += 1
                return
            raise
        self.outcomes["update accepted"] += 1
        if name not in self.may_accept:
            self.wrong.append(f"{name} {json.dumps(payload)[:200]}: accepted")

    def signal(self, name: str, payload: Any) -> None:
        self.call(within(self.handle.signal(name, payload), f"signal {name}", MESSAGE_WITHIN_S))
        self.outcomes["signal sent"] += 1

    def run(self, name: str, examples: int) -> None:
        send = self.update if name in UPDATES else self.signal

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # outcomes are recorded, never raised: nothing to shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(payload=payloads(name))
        def fuzz_one(payload: Any) -> None:
            send(name, payload)

        fuzz_one()


async def failed_workflow_tasks(handle: WorkflowHandle[Any, Any]) -> int:
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return sum([event.event_type == failed async for event in handle.fetch_history_events()])


@pytest.mark.fuzz
@pytest.mark.timeout(300)
async def test_fuzzed_updates_and_signals_are_refused_typed_and_leave_the_exchange_working(
    dev_client: ExchangeClient, funded_partnership: Fund, pg_pool: asyncpg.Pool, fuzz_examples: int | None
) -> None:
    """Generated payloads for every update and signal, from a raw client: each update refused with a typed,
    non-retryable failure, no failed workflow task, the ledger untouched, and the exchange still working."""
    examples = fuzz_examples or EXAMPLES_PER_MESSAGE
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    status = await assigned(dev_client, app.application_id)
    assert status.review is not None
    # The SDK's default converter: JSON from dicts, nothing of ours on the caller's side.
    raw = Client(dev_client.temporal.service_client, namespace=dev_client.temporal.namespace)
    handle = raw.get_workflow_handle(exchange_workflow_id(app.application_id))
    before = await ledger_snapshot(pg_pool)
    fuzz = MessageFuzz(handle, asyncio.get_running_loop())
    started = time.monotonic()
    for name in [*(u for u in UPDATES if u not in ENDING), *SIGNALS]:
        await asyncio.to_thread(fuzz.run, name, examples)
    assert fuzz.wrong == [], fuzz.wrong[:20]
    assert fuzz.outcomes["update accepted"] == 0
    during = await within(dev_client.status(app.application_id), "the status query after the fuzz", MESSAGE_WITHIN_S)
    assert during.stage is Stage.REVIEW
    reviewer = next(a.reviewer_id for a in status.review.assignments if a.status == "open")
    await send_update(handle, "submit_review", review(reviewer))  # a valid decision is still taken
    for name in sorted(ENDING):
        await asyncio.to_thread(fuzz.run, name, examples)
    seconds = time.monotonic() - started
    changes = ledger_changes(before, await ledger_snapshot(pg_pool))
    print(  # noqa: T201
        f"\nfuzz[temporal]: {sum(fuzz.outcomes.values())} messages in {seconds:.1f} s: {dict(fuzz.outcomes)}; "
        f"wrong outcomes: {len(fuzz.wrong)}; ledger rows changed: {sum(len(r) for r in changes.values())}"
    )
    assert fuzz.wrong == [], fuzz.wrong[:20]
    assert sum(fuzz.outcomes.values()) >= (len(UPDATES) + len(SIGNALS)) * examples * 3 // 4
    # Nothing was held yet in REVIEW, so even an accepted withdraw or cancel has nothing to void.
    assert changes == {}, "refused messages wrote to the ledger"
    await within(dev_client.status(app.application_id), "the status query at the end", MESSAGE_WITHIN_S)
    assert await failed_workflow_tasks(handle) == 0


@pytest.mark.fuzz
@pytest.mark.timeout(300)
async def test_fuzzed_messages_to_an_exchange_holding_money_never_touch_its_hold(
    dev_client: ExchangeClient, funded_partnership: Fund, pg_pool: asyncpg.Pool, fuzz_examples: int | None
) -> None:
    """In AGREEMENT, with the grant held: every update but amend_dates (any actor may) and withdraw/cancel refused
    typed, signals (a fake `funds_held`, a `confirm_payment`) ignored, no ledger row changed but by an accepted
    amend_dates on this exchange; then an accepted withdraw or cancel voids this exchange's hold, nothing else."""
    examples = fuzz_examples or EXAMPLES_PER_MESSAGE
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    await approve(dev_client, app.application_id)
    await wait_for_stage(dev_client, app.application_id, Stage.AGREEMENT)
    raw = Client(dev_client.temporal.service_client, namespace=dev_client.temporal.namespace)
    handle = raw.get_workflow_handle(exchange_workflow_id(app.application_id))
    before = await ledger_snapshot(pg_pool)
    fuzz = MessageFuzz(handle, asyncio.get_running_loop(), ENDING | AMENDING)
    started = time.monotonic()
    for name in [*(u for u in UPDATES if u not in ENDING), *SIGNALS]:
        await asyncio.to_thread(fuzz.run, name, examples)
    assert fuzz.wrong == [], fuzz.wrong[:20]
    during = await within(dev_client.status(app.application_id), "the status query after the fuzz", MESSAGE_WITHIN_S)
    assert during.stage is Stage.AGREEMENT
    assert during.held_cents > 0
    changes = ledger_changes(before, await ledger_snapshot(pg_pool))
    if not fuzz.outcomes["update accepted"]:
        assert changes == {}, "refused messages touched the ledger"
    assert unaccounted(changes, {app.application_id}) == [], "only an accepted amend_dates re-holds, this exchange's"
    for name in sorted(ENDING):
        await asyncio.to_thread(fuzz.run, name, examples)
    seconds = time.monotonic() - started
    await within(result_of(dev_client, app.application_id), "the exchange to close", MESSAGE_WITHIN_S)
    changes = ledger_changes(before, await ledger_snapshot(pg_pool))
    print(  # noqa: T201
        f"\nfuzz[temporal, money held]: {sum(fuzz.outcomes.values())} messages in {seconds:.1f} s: "
        f"{dict(fuzz.outcomes)}; ledger rows changed: {sum(len(r) for r in changes.values())}"
    )
    assert fuzz.wrong == [], fuzz.wrong[:20]
    assert any(row[2] == "void" for row in changes.get("transfers", set())), "the hold was voided on the way out"
    assert unaccounted(changes, {app.application_id}) == [], "every new transfer is this exchange's"
    assert await failed_workflow_tasks(handle) == 0
