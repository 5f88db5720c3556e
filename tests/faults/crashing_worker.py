"""A worker process whose `post_payment` dies (os._exit) right after its transaction commits.

Run by tests/faults/test_worker_crash.py as a subprocess: the stand-in is registered under the same
activity name, so Temporal cannot tell it from the real one; everything else is the real worker.
"""

from __future__ import annotations

import asyncio
import os

from temporalio import activity
from temporalio.client import Client

from activities.payments import PaymentActivities
from ledger.store import LedgerStore
from schemas.codec import parse_payload_keys
from schemas.converter import data_converter
from schemas.payment import PostPaymentInput, PostPaymentResult
from workers.main import DEV_FINANCE_WEBHOOK_URL, build_worker, database_pool


class CrashAfterCommit(PaymentActivities):
    @activity.defn(name="post_payment")
    async def post_payment(self, request: PostPaymentInput) -> PostPaymentResult:
        await super().post_payment(request)
        os._exit(137)  # as if killed -9: committed, but the reply never reaches Temporal


async def main() -> None:
    # The suite's payload key, inherited from the test (tests/conftest.py), as every worker of the suite has it.
    keys = parse_payload_keys(os.environ["CX_PAYLOAD_KEYS"], os.environ.get("CX_PAYLOAD_KEY_ID"))
    client = await Client.connect(os.environ["TEMPORAL_ADDRESS"], data_converter=data_converter(keys))
    async with database_pool(os.environ["DATABASE_URL"]) as pool:
        # Configured as the healthy worker is: a retry must enqueue the very same outbox message.
        payments = CrashAfterCommit(pool, LedgerStore(pool), DEV_FINANCE_WEBHOOK_URL)
        async with build_worker(client, pool, os.environ["CX_TASK_QUEUE"], payments=payments):
            await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
