"""CX_EVIDENCE_STORE and its companions through the one Settings: `file` by default, `s3://bucket/prefix`
built into the S3 store that every process uses, and malformed values refused with a line naming the variable."""

from __future__ import annotations

import pytest

from ledger.evidence_s3 import S3EvidenceStore
from ledger.evidence_store import FileEvidenceStore
from tests.evidence_s3.conftest import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, Bucket
from tests.reporting.documents import pdf
from tests.reporting.test_store import unique_tag
from workers import check_config
from workers.evidence_store import open_evidence_store
from workers.settings import Settings, SettingsError


def test_the_local_directory_is_the_default() -> None:
    """Nothing set: the file store, as before this setting existed."""
    settings = Settings.from_env({})
    assert settings.evidence_s3 is None
    assert isinstance(open_evidence_store(settings), FileEvidenceStore)


async def test_an_s3_url_builds_the_store_every_process_uses(bucket: Bucket) -> None:
    """`s3://bucket/prefix` with an endpoint, a region and keys: the store writes `<prefix>/<sha256>` there."""
    settings = Settings.from_env(
        {
            "CX_EVIDENCE_STORE": f"s3://{bucket.name}/{bucket.prefix}/",
            "CX_S3_ENDPOINT_URL": bucket.endpoint_url + "/",
            "CX_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
    )
    assert settings.evidence_s3 == (bucket.name, bucket.prefix)
    assert SECRET_ACCESS_KEY not in repr(settings)
    store = open_evidence_store(settings)
    assert isinstance(store, S3EvidenceStore)
    data = pdf(unique_tag())
    digest = await store.put(data)
    assert bucket.object_bytes(digest) == data


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CX_EVIDENCE_STORE": "s3://Not_A_Bucket"}, "CX_EVIDENCE_STORE='s3://Not_A_Bucket': must be `file` or"),
        ({"CX_EVIDENCE_STORE": "/srv/evidence"}, "CX_EVIDENCE_STORE='/srv/evidence': must be `file` or"),
        ({"CX_EVIDENCE_STORE": "s3://bucket/a b"}, "CX_EVIDENCE_STORE='s3://bucket/a b': must be"),
        (
            {"CX_EVIDENCE_STORE": "s3://bucket", "CX_S3_ENDPOINT_URL": "minio:9000"},
            "CX_S3_ENDPOINT_URL='minio:9000': must be an http:// or https:// URL",
        ),
        ({"CX_EVIDENCE_STORE": "s3://bucket", "CX_S3_REGION": "EU West"}, "CX_S3_REGION='EU West': must be a region"),
        (
            {"CX_EVIDENCE_STORE": "s3://bucket", "AWS_ACCESS_KEY_ID": "key"},
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both",
        ),
        ({"CX_EVIDENCE_STORE": "s3://bucket", "CX_EVIDENCE_DIR": "/srv/x"}, "CX_EVIDENCE_DIR: not used with"),
        ({"CX_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}, "set only with CX_EVIDENCE_STORE=s3://bucket"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    """Each mistake is one line that names the variable (or the pair) and the rule."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_check_config_names_the_store() -> None:
    """`cx worker|api --check-config` print the directory, or the bucket and its server (never the keys)."""
    assert check_config.evidence_location(Settings.from_env({"CX_EVIDENCE_DIR": "/srv/evidence"})) == "/srv/evidence"
    s3 = Settings.from_env(
        {
            "CX_EVIDENCE_STORE": "s3://cx-evidence/prod",
            "CX_S3_ENDPOINT_URL": "https://minio.internal:9000",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
    )
    assert check_config.evidence_location(s3) == "s3://cx-evidence/prod at https://minio.internal:9000"
    assert check_config.evidence_location(Settings.from_env({"CX_EVIDENCE_STORE": "s3://cx-evidence"})).endswith(
        "at AWS S3"
    )
