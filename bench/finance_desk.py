"""Finance for the scale-out bench: the repo's finance receiver (workers/finance_stub.py), with every
payment order it accepts counted, and the wait for an exchange's order to arrive there.

The stub checks each webhook's signature (and deduplicates redeliveries, where it does) before it stores
the order under the application id; `CountedOrders` takes the place of its store and records each order
stored, so the bench can say how many deliveries finance acted on per payment order and per exchange. The
bench's finance confirms a payment only once its order has come this way: through the outbox, a
dispatcher and a signed webhook, never read from Postgres.
"""

from __future__ import annotations

import asyncio
import time

from bench.drivers import WAIT_LIMIT_S
from workers.finance_stub import FinanceStub

ARRIVAL_POLL_S = 0.05


class CountedOrders(dict[str, dict[str, object]]):
    """The stub's store of received orders (application id -> order), remembering every order stored."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: list[tuple[str, str]] = []  # (application id, payment order id), one per accepted delivery

    def __setitem__(self, application_id: str, order: dict[str, object]) -> None:
        self.stored.append((application_id, str(order.get("payment_order_id"))))
        super().__setitem__(application_id, order)


class FinanceDesk:
    """The finance receiver, in this process, and finance's view of which orders have arrived."""

    def __init__(self, webhook_secret: str) -> None:
        self.orders = CountedOrders()
        self._stub = FinanceStub(webhook_secret)
        self._stub.received = self.orders

    @property
    def url(self) -> str:
        return self._stub.url

    async def start(self) -> None:
        await self._stub.start()

    async def close(self) -> None:
        await self._stub.close()

    async def payment_order(self, application_id: str) -> tuple[str, int]:
        """The order's id and amount once its webhook has been accepted, waiting at most WAIT_LIMIT_S."""
        deadline = time.monotonic() + WAIT_LIMIT_S
        while (order := self.orders.get(application_id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{application_id}: no payment order reached finance within {WAIT_LIMIT_S:.0f} s")
            await asyncio.sleep(ARRIVAL_POLL_S)
        amount = order["amount_cents"]
        if not isinstance(amount, int):
            raise TypeError(f"{application_id}: the payment order's amount_cents is {amount!r}, not an integer")
        return str(order["payment_order_id"]), amount
