"""The reporting stage reads the evidence from S3: an exchange driven to PAID with the worker's
`verify_evidence` reading the stored copies from the bucket; a copy damaged in the bucket refuses the report
(naming the file and asking for it again) until the same file is uploaded again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from clients.client import DecisionRefused, ExchangeClient
from ledger.evidence import store_evidence
from ledger.store import LedgerStore
from schemas.stages import Stage
from tests.evidence_s3.conftest import Bucket
from tests.factories import application
from tests.reporting.documents import pdf
from tests.workflows.conftest import Fund, agree, approve, result_of, until, validate, wait_for_stage
from workers.main import build_worker


@pytest_asyncio.fixture
async def s3_client(
    time_skipping_env: WorkflowEnvironment, pg_pool: asyncpg.Pool, bucket: Bucket
) -> AsyncIterator[ExchangeClient]:
    """An ExchangeClient on the time-skipping server; its worker's evidence store is the bucket."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    async with build_worker(time_skipping_env.client, pg_pool, task_queue, evidence_store=bucket.store()):
        yield ExchangeClient(time_skipping_env.client, task_queue)


async def _upload(pool: asyncpg.Pool, bucket: Bucket, application_id: str, content: bytes) -> dict[str, object]:
    async with pool.acquire() as conn:
        item = await store_evidence(
            conn,
            bucket.store(),
            application_id=application_id,
            path_or_bytes=content,
            name="boarding-pass.pdf",
            kind="boarding_pass",
            uploaded_by="visitor",
        )
    return item.model_dump()


async def test_the_report_is_checked_against_the_bucket_and_the_exchange_is_paid(
    s3_client: ExchangeClient,
    time_skipping_env: WorkflowEnvironment,
    ledger_store: LedgerStore,
    funded_partnership: Fund,
    pg_pool: asyncpg.Pool,
    bucket: Bucket,
) -> None:
    """With its copy damaged in the bucket the report is refused naming the file; the same file uploaded
    again repairs the copy, the report passes and the exchange is paid 950 EUR once."""
    partnership = await funded_partnership(1_000_000)
    app = application(visitor_partnership_id=partnership)
    await s3_client.start_exchange(app)
    await wait_for_stage(s3_client, app.application_id, Stage.REVIEW)
    await approve(s3_client, app.application_id)
    await wait_for_stage(s3_client, app.application_id, Stage.AGREEMENT)
    await agree(s3_client, app.application_id)
    await time_skipping_env.sleep(timedelta(days=40))  # past the stay: durable timers fire
    await wait_for_stage(s3_client, app.application_id, Stage.REPORTING)
    content = pdf(f"boarding pass for {app.application_id}")
    item = await _upload(pg_pool, bucket, app.application_id, content)
    bucket.overwrite(str(item["sha256"]), b"%PDF-1.4 damaged in the bucket")
    report = {"actor_id": "visitor-vera", "summary": "Done.", "evidence": [item]}

    with pytest.raises(DecisionRefused, match="stored copy is missing or damaged; upload the file again"):
        await s3_client.submit_report(app.application_id, report)

    assert await _upload(pg_pool, bucket, app.application_id, content) == item, "the record stands"
    assert bucket.object_bytes(str(item["sha256"])) == content, "the copy is repaired"
    await s3_client.submit_report(app.application_id, report)
    await validate(s3_client, app.application_id)
    status = await until(s3_client, app.application_id, lambda s: s.payment_order_id is not None, "the payment order")
    await s3_client.confirm_payment(
        app.application_id,
        {
            "payment_order_id": status.payment_order_id,
            "amount_cents": status.paid_cents,
            "payment_reference": "SEPA-S3",
            "confirmed_by": "finance-fia",
        },
    )
    outcome = await result_of(s3_client, app.application_id)
    assert (outcome.stage, outcome.paid_cents) == (Stage.PAID, 95_000)
    kinds = sorted(t.kind.value for t in await ledger_store.exchange_history(app.application_id))
    assert kinds == ["hold", "pay_out", "post"]
