"""A real S3 API server for the evidence store's tests: moto's server as a subprocess on a free port.

Started once per session, stopped afterwards; every test gets a bucket of its own (versioned, so a test can
count the versions a put wrote). The server accepts any credentials, so the tests pass fixed ones explicitly
and the AWS default chain of the machine is never consulted.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import obstore
import pytest
from obstore.store import S3Store

from ledger.evidence_s3 import S3EvidenceStore
from tests.workflows.conftest import dev_client as dev_client  # the fixture: a worker on the dev server
from tests.workflows.conftest import funded_partnership as funded_partnership
from tests.workflows.conftest import ledger_store as ledger_store
from workers.devstack import free_port

# moto's server imports every AWS service it mocks before it answers: seconds on a busy 2-CPU machine.
START_WITHIN_S = 60
STOP_WITHIN_S = 10
REGION = "eu-west-1"
ACCESS_KEY_ID = "cx-test-key"
SECRET_ACCESS_KEY = "cx-test-secret"


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the test server, with plain-HTTP access for what a test checks or breaks by hand."""

    endpoint_url: str
    name: str
    prefix: str

    def store(self) -> S3EvidenceStore:
        """The engine's store on this bucket, as `open_evidence_store` builds it from the Settings."""
        return S3EvidenceStore(
            self.name,
            prefix=self.prefix,
            endpoint_url=self.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
        )

    def admin(self) -> S3Store:
        """A plain client on the bucket (no prefix, no checks): what a test reads or breaks by hand, signed,
        as the server refuses anonymous access to the objects."""
        return S3Store(
            self.name,
            config={
                "endpoint": self.endpoint_url,
                "region": REGION,
                "access_key_id": ACCESS_KEY_ID,
                "secret_access_key": SECRET_ACCESS_KEY,
            },
            client_options={"allow_http": True},
        )

    def key(self, sha256: str) -> str:
        return f"{self.prefix}/{sha256}"

    def object_bytes(self, sha256: str) -> bytes:
        return bytes(obstore.get(self.admin(), self.key(sha256)).bytes())

    def version_of(self, sha256: str) -> str | None:
        """The object's current version id (the bucket is versioned: every write makes a new one)."""
        return obstore.head(self.admin(), self.key(sha256))["version"]

    def overwrite(self, sha256: str, data: bytes) -> None:
        """Replace the object behind the engine's back: a storage fault or a hand-made change."""
        obstore.put(self.admin(), self.key(sha256), data)


def _wait_until_answering(server: subprocess.Popen[bytes], endpoint_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"moto_server exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{endpoint_url}/moto-api/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet: the only thing awaited here
        time.sleep(0.2)
    raise AssertionError(f"waited {START_WITHIN_S} s for moto_server at {endpoint_url}; log: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto S3 server started for the session (and stopped after it)."""
    port = free_port()
    endpoint_url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    moto_server = Path(sys.executable).parent / "moto_server"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_answering(server, endpoint_url, log)
        yield endpoint_url
    finally:
        server.terminate()
        try:
            server.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(STOP_WITHIN_S)


@pytest.fixture
def bucket(s3_endpoint: str) -> Bucket:
    """A new versioned bucket, and the key prefix the store writes under."""
    name = f"cx-evidence-{uuid.uuid4().hex[:12]}"
    created = httpx.put(f"{s3_endpoint}/{name}", headers={"x-amz-bucket-region": REGION})
    assert created.status_code == 200, created.text[:200]
    versioning = (
        '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Status>Enabled</Status></VersioningConfiguration>"
    )
    versioned = httpx.put(f"{s3_endpoint}/{name}?versioning", content=versioning)
    assert versioned.status_code == 200, versioned.text[:200]
    return Bucket(s3_endpoint, name, "evidence/v1")
