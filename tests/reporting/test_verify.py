"""`verify_evidence` as a Temporal activity against a real Postgres: a report's items that were never
uploaded for the application, or recorded with another size or kind, are listed; good items pass."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.reporting import EvidenceActivities
from ledger.evidence_store import FileEvidenceStore
from schemas.converter import DATA_CONVERTER
from schemas.reporting import VerifyEvidenceInput, VerifyEvidenceResult
from tests.reporting.documents import jpeg, pdf
from tests.reporting.test_store import started, unique_tag, upload
from tests.waiting import within


async def test_verify_evidence_flags_a_missing_and_a_mismatched_item(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Of three items, the uploaded one passes, one never uploaded is missing, and one whose size and kind
    differ from the upload is mismatched with both differences named."""
    application_id, another = await started(pg_pool), await started(pg_pool)
    store = FileEvidenceStore(tmp_path)
    async with pg_pool.acquire() as conn:
        good = await upload(conn, store, application_id, pdf(unique_tag()))
        other = await upload(conn, store, application_id, jpeg(unique_tag()), kind="accommodation_invoice")
        # Uploaded, but for another application: for this one it was never uploaded.
        elsewhere = await upload(conn, store, another, pdf(unique_tag()))
    tampered = other.model_copy(update={"size_bytes": other.size_bytes + 1, "kind": "travel_invoice"})
    never = good.model_copy(update={"sha256": "0" * 64})

    result = await ActivityEnvironment().run(
        EvidenceActivities(pg_pool).verify_evidence,
        VerifyEvidenceInput(application_id=application_id, items=(good, never, tampered, elsewhere)),
    )

    assert not result.ok
    assert result.missing == (never, elsewhere)
    [mismatch] = result.mismatched
    assert mismatch.item == tampered
    assert (mismatch.recorded_size_bytes, mismatch.recorded_kind) == (other.size_bytes, "accommodation_invoice")
    assert "size_bytes is" in mismatch.message
    assert "recorded as accommodation_invoice" in mismatch.message


async def test_verify_evidence_passes_a_report_whose_items_were_all_uploaded(
    pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Items exactly as uploaded (the name being only a label) pass, and the result survives the data converter."""
    application_id = await started(pg_pool)
    async with pg_pool.acquire() as conn:
        item = await upload(conn, FileEvidenceStore(tmp_path), application_id, pdf(unique_tag()))
    renamed = item.model_copy(update={"name": "Boarding pass, outbound"})

    result = await EvidenceActivities(pg_pool).verify_evidence(
        VerifyEvidenceInput(application_id=application_id, items=(renamed,))
    )

    assert result.ok
    assert result == VerifyEvidenceResult()
    payload = DATA_CONVERTER.payload_converter.to_payloads([result])
    assert DATA_CONVERTER.payload_converter.from_payloads(payload, [VerifyEvidenceResult]) == [result]


@workflow.defn(name="VerifyEvidenceByName")
class VerifyEvidenceByName:
    """Schedules the activity by its recorded name only, as a history replayed after a Python rename would."""

    @workflow.run
    async def run(self, request: VerifyEvidenceInput) -> VerifyEvidenceResult:
        result: VerifyEvidenceResult = await workflow.execute_activity(
            "verify_evidence",
            request,
            result_type=VerifyEvidenceResult,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),  # an unregistered name fails the run at once
        )
        return result


async def test_the_activity_name_is_stable(
    dev_server_env: WorkflowEnvironment, pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """History records the activity by name, so a worker running the real activity serves `verify_evidence`."""
    task_queue = f"cx-test-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        dev_server_env.client,
        task_queue=task_queue,
        workflows=[VerifyEvidenceByName],
        activities=[EvidenceActivities(pg_pool).verify_evidence],
        # Only the name is under test here: the sandbox would re-import this test module for nothing.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        application_id = await started(pg_pool)
        async with pg_pool.acquire() as conn:
            item = await upload(conn, FileEvidenceStore(tmp_path), application_id, pdf(unique_tag()))
        request = VerifyEvidenceInput(application_id=application_id, items=(item,))
        run = dev_server_env.client.execute_workflow(
            VerifyEvidenceByName.run, request, id=f"verify-by-name-{uuid.uuid4().hex}", task_queue=task_queue
        )
        result = await within(run, "the run that calls verify_evidence by name", within_s=30)
    assert result == VerifyEvidenceResult()


async def test_verify_evidence_reads_the_stored_copies(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """With the worker's store, an item recorded as it should be but whose file is gone from the store, or
    damaged there, is a mismatch asking for the file again; an intact one passes; no store, no reading."""
    application_id = await started(pg_pool)
    store = FileEvidenceStore(tmp_path)
    async with pg_pool.acquire() as conn:
        intact = await upload(conn, store, application_id, pdf(unique_tag()))
        lost = await upload(conn, store, application_id, pdf(unique_tag()))
        damaged = await upload(conn, store, application_id, jpeg(unique_tag()), kind="accommodation_invoice")
    store.path_for(lost.sha256).unlink()
    store.path_for(damaged.sha256).write_bytes(b"\xff\xd8 not the upload")
    request = VerifyEvidenceInput(application_id=application_id, items=(intact, lost, damaged))

    result = await EvidenceActivities(pg_pool, store=store).verify_evidence(request)

    assert result.missing == ()
    assert [m.item for m in result.mismatched] == [lost, damaged]
    assert all("the stored copy is missing or damaged; upload the file again" in m.message for m in result.mismatched)
    assert (await EvidenceActivities(pg_pool).verify_evidence(request)).ok, "records only, as before"
