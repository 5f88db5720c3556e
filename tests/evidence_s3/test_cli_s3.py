"""`cx evidence add` as a subprocess with CX_EVIDENCE_STORE=s3://...: the file lands in the bucket through
the ClientConfig the entry point builds from the Settings; a bucket that does not answer is exit 5 in one line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg

from clients.exit_codes import ExitCode
from schemas.exchange import EvidenceItem
from tests.clients.test_cli import cx
from tests.evidence_s3.conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, Bucket
from tests.reporting.documents import pdf
from tests.reporting.test_evidence_cli import one_line_error
from tests.reporting.test_store import started, unique_tag
from workers.devstack import free_port


def s3_env(database_url: str, bucket: str, prefix: str, endpoint_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "CX_EVIDENCE_STORE": f"s3://{bucket}/{prefix}",
        "CX_S3_ENDPOINT_URL": endpoint_url,
        "CX_S3_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }


async def test_cx_evidence_add_stores_in_the_bucket(
    pg_pool: asyncpg.Pool, database_url: str, tmp_path: Path, bucket: Bucket
) -> None:
    """The printed item's SHA-256 names an object in the bucket holding the file's bytes."""
    application_id, data = await started(pg_pool), pdf(unique_tag())
    document = tmp_path / "boarding-pass.pdf"
    document.write_bytes(data)
    env = s3_env(database_url, bucket.name, bucket.prefix, bucket.endpoint_url)

    added = cx("evidence", "add", application_id, str(document), "--kind", "boarding_pass", "--as", "ops", env=env)

    assert added.returncode == 0, added.stderr
    item = EvidenceItem.model_validate_json(added.stdout)
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert bucket.object_bytes(item.sha256) == data


async def test_a_bucket_that_does_not_answer_is_exit_5(
    pg_pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    """Nothing listens at the endpoint: one line naming the store, exit UNAVAILABLE, no row recorded."""
    application_id = await started(pg_pool)
    document = tmp_path / "boarding-pass.pdf"
    document.write_bytes(pdf(unique_tag()))
    env = s3_env(database_url, "cx-nowhere", "", f"http://127.0.0.1:{free_port()}")

    added = cx("evidence", "add", application_id, str(document), "--kind", "boarding_pass", "--as", "ops", env=env)

    assert "evidence store: s3://cx-nowhere" in one_line_error(added, ExitCode.UNAVAILABLE)
    rows = await pg_pool.fetchval("SELECT count(*) FROM evidence_files WHERE application_id = $1", application_id)
    assert rows == 0
