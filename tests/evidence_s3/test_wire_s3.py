"""What a put says on the wire, seen by a recording proxy between the store and the S3 server: the body's
SHA-256 in `x-amz-checksum-sha256` (which AWS S3, MinIO and Ceph verify; moto does not, so the header is
checked here) and `If-None-Match: *` (which moto enforces too: tests/evidence_s3/test_store_s3.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest_asyncio

from ledger.evidence_s3 import S3EvidenceStore
from tests.evidence_s3.conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, Bucket
from tests.reporting.documents import pdf
from tests.reporting.test_store import unique_tag
from tests.waiting import within

READ_BYTES = 65_536


@dataclass
class RecordingProxy:
    """Forwards every connection to the S3 server and keeps what the client sent."""

    target: tuple[str, int]
    sent: bytearray = field(default_factory=bytearray)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bool) -> None:
            while chunk := await source.read(READ_BYTES):
                if record:
                    self.sent.extend(chunk)
                sink.write(chunk)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False))

    def put_headers(self) -> list[dict[str, str]]:
        """The headers of every PUT request seen, names in lowercase."""
        heads = re.findall(rb"PUT [^\r\n]+\r\n(.*?)\r\n\r\n", bytes(self.sent), flags=re.DOTALL)
        return [
            {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head.decode().split("\r\n"))
            }
            for head in heads
        ]


@pytest_asyncio.fixture
async def proxy(bucket: Bucket) -> AsyncIterator[tuple[RecordingProxy, str]]:
    url = urlsplit(bucket.endpoint_url)
    assert url.hostname is not None
    assert url.port is not None
    recording = RecordingProxy((url.hostname, url.port))
    server = await asyncio.start_server(recording.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield recording, f"http://127.0.0.1:{port}"


async def test_a_put_carries_the_sha256_checksum_and_if_none_match(
    proxy: tuple[RecordingProxy, str], bucket: Bucket
) -> None:
    """One PUT whose x-amz-checksum-sha256 is the base64 SHA-256 of the file and whose If-None-Match is `*`."""
    recording, endpoint_url = proxy
    store = S3EvidenceStore(
        bucket.name,
        prefix=bucket.prefix,
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    data = pdf(unique_tag())

    digest = await within(store.put(data), "a put through the recording proxy", within_s=30)

    [headers] = recording.put_headers()
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert headers["if-none-match"] == "*"
    assert bucket.object_bytes(digest) == data
