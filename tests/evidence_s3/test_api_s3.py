"""Evidence uploaded through the REST API lands in the bucket (CX_EVIDENCE_STORE=s3://...), and a bucket that
does not answer is the engine's trouble: 503, nothing recorded."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio

from clients.api import create_app
from clients.client import ExchangeClient
from ledger.evidence_s3 import S3EvidenceStore
from ledger.evidence_store import EvidenceStore
from tests.api.helpers import APPLICANT, pdf, token_table
from tests.api.test_evidence import started_by_the_applicant, upload
from tests.evidence_s3.conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Bucket
from tests.workflows.conftest import add_review_panel
from workers.devstack import free_port


@pytest_asyncio.fixture
async def partnership(pg_pool: asyncpg.Pool) -> str:
    partnership_id = f"p-s3-{uuid.uuid4().hex[:8]}"
    await add_review_panel(pg_pool, partnership_id)
    return partnership_id


def api_on(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str, store: EvidenceStore
) -> httpx.AsyncClient:
    app = create_app(dev_client, pg_pool, token_table(partnership), evidence_store=store)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest_asyncio.fixture
async def api(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str, bucket: Bucket
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_on(dev_client, pg_pool, partnership, bucket.store()) as client:
        yield client


async def test_an_upload_over_http_ends_in_the_bucket(api: httpx.AsyncClient, partnership: str, bucket: Bucket) -> None:
    """POST /exchanges/{id}/evidence with the S3 store: 201, and the object `<prefix>/<sha256>` holds the bytes;
    the same bytes again answer 200 and write nothing new."""
    app_id = await started_by_the_applicant(api, partnership)
    content = pdf(f"{app_id} boarding pass")
    digest = hashlib.sha256(content).hexdigest()

    first = await upload(api, app_id, APPLICANT, content)

    assert first.status_code == 201, first.text
    assert first.json()["sha256"] == digest
    assert bucket.object_bytes(digest) == content
    version = bucket.version_of(digest)
    again = await upload(api, app_id, APPLICANT, content)
    assert again.status_code == 200, again.text
    assert bucket.version_of(digest) == version


async def test_a_bucket_that_does_not_answer_is_a_503(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, partnership: str
) -> None:
    """Nothing listens at the endpoint: the upload answers 503 "Evidence store unavailable" and no row is written."""
    nowhere = S3EvidenceStore(
        "cx-nowhere",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    async with api_on(dev_client, pg_pool, partnership, nowhere) as api:
        app_id = await started_by_the_applicant(api, partnership)
        content = pdf(f"{app_id} boarding pass")
        answer = await upload(api, app_id, APPLICANT, content)
    assert answer.status_code == 503, answer.text
    assert answer.json()["title"] == "Evidence store unavailable"
    rows = await pg_pool.fetchval("SELECT count(*) FROM evidence_files WHERE application_id = $1", app_id)
    assert rows == 0
