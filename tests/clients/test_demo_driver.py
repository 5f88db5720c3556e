"""The demo's driver reads the read model every round and queries a workflow's `status` (a Temporal query,
billed as an action on Temporal Cloud) only when its exchange moved, when it is due again, or never was.

The engine is a stand-in here: what is under test is the driver's choice of when to ask, so the client and
the read model are scripted and every `status` query is counted (issue 12). `make run ARGS=--once` runs the demo
against the real stack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from clients.client import ExchangeClient
from clients.demo import Plan, Sample, demo_samples, drive
from ledger.progress import Progress
from schemas.exchange import ApplicationInput, EvidenceItem, ExchangeStatus, Party
from schemas.stages import Stage

ROUNDS_LIMIT = 200  # every scripted read model stops the driver long before this many rounds


class StandIn(ExchangeClient):
    """The engine's client, answering `status` with whatever the test set, and counting the queries."""

    def __init__(self, status: ExchangeStatus) -> None:
        self.current = status
        self.queries = 0
        self.payments: list[Mapping[str, Any]] = []

    async def start_exchange(self, application: ApplicationInput | Mapping[str, Any], **_: Any) -> str:
        return "started"

    async def status(self, application_id: str) -> ExchangeStatus:
        self.queries += 1
        return self.current

    async def confirm_payment(self, application_id: str, confirmation: Any) -> None:
        self.payments.append(confirmation)


def _sample() -> Sample:
    sample = demo_samples(date(2026, 3, 2))[0]
    assert sample.plan is Plan.PAID
    return sample


def _status(sample: Sample, stage: Stage, **fields: Any) -> ExchangeStatus:
    return ExchangeStatus(application_id=sample.application.application_id, stage=stage, partnership_id="p", **fields)


async def _no_upload(application_id: str) -> EvidenceItem:
    raise AssertionError("nothing to upload in these scripts")


class Script:
    """A read model that answers round `n` with `rows[n]` (the last one ever after) and sets `stop` after
    `stop_after` rounds, so that no script can loop for ever."""

    def __init__(self, sample: Sample, rows: list[Progress | None], stop: asyncio.Event, stop_after: int) -> None:
        self.app_id = sample.application.application_id
        self.rows = rows
        self.stop = stop
        self.stop_after = min(stop_after, ROUNDS_LIMIT)
        self.rounds = 0

    async def __call__(self, application_ids: Sequence[str]) -> Mapping[str, Progress]:
        row = self.rows[min(self.rounds, len(self.rows) - 1)]
        self.rounds += 1
        if self.rounds >= self.stop_after:
            self.stop.set()
        return {} if row is None else {self.app_id: row}


async def test_status_is_queried_only_when_the_read_model_moves() -> None:
    """Eight rounds, three queries: the first look, the row's appearance and its next sequence; the terminal row
    settles the sample with no query at all."""
    sample, stop, lines = _sample(), asyncio.Event(), list[str]()
    client = StandIn(_status(sample, Stage.TRAVEL))
    travel = [Progress(Stage.TRAVEL, 5)] * 3
    rows = [None, None, *travel, Progress(Stage.TRAVEL, 6), Progress(Stage.TRAVEL, 6), Progress(Stage.PAID, 9)]
    script = Script(sample, rows, stop, stop_after=ROUNDS_LIMIT)

    stages = await drive(
        client, [sample], lines.append, stop, _no_upload, script, poll_interval_s=0.001, requery_after_s=60
    )

    assert stages == {sample.application.application_id: Stage.PAID}
    assert script.rounds == len(rows)
    assert client.queries == 3
    assert lines[-1] == "1 of 1 samples settled; status queries: 3"


async def test_a_read_model_that_never_moves_is_queried_at_the_slow_pace() -> None:
    """A projection that lags for ever does not stall the driver: it asks again every `requery_after_s`,
    and only then."""
    sample, stop, lines = _sample(), asyncio.Event(), list[str]()
    client = StandIn(_status(sample, Stage.TRAVEL))
    script = Script(sample, [Progress(Stage.TRAVEL, 5)], stop, stop_after=40)

    loop = asyncio.get_running_loop()
    began = loop.time()
    await drive(client, [sample], lines.append, stop, _no_upload, script, poll_interval_s=0.005, requery_after_s=0.05)
    took = loop.time() - began

    assert script.rounds == 40
    assert 2 <= client.queries <= 1 + took / 0.05, (client.queries, took)
    assert lines[-1] == f"0 of 1 samples settled; status queries: {client.queries}"


async def test_finance_receiving_the_order_is_acted_on_without_another_query() -> None:
    """PAYMENT waits for finance, which the workflow does not see: the driver acts again on the status it has
    as soon as the order arrives, and confirms the payment once."""
    sample, stop, lines = _sample(), asyncio.Event(), list[str]()
    client = StandIn(
        _status(
            sample,
            Stage.PAYMENT,
            payment_order_id="order-1",
            paid_cents=95_000,
            parties={Party.VISITOR_PARTNERSHIP: "vop"},
        )
    )
    script = Script(sample, [Progress(Stage.PAYMENT, 7)], stop, stop_after=30)
    received = iter([False] * 5 + [True])

    def payment_order_received(application_id: str) -> bool:
        return next(received, True)

    await drive(
        client,
        [sample],
        lines.append,
        stop,
        _no_upload,
        script,
        poll_interval_s=0.001,
        payment_order_received=payment_order_received,
        requery_after_s=60,
    )

    assert client.queries == 1
    assert [p["payment_order_id"] for p in client.payments] == ["order-1"]
    confirmed = "finance: order received by signed webhook; payment confirmed"
    assert f"{sample.application.application_id}: {confirmed}" in lines
