"""The evidence store every process uses, built from the one Settings (issue 15, item 7).

The worker (its `verify_evidence` activity), the API and its web app, `cx evidence` (through ClientConfig)
and `make run` all call `open_evidence_store`, so they read and write the same files: CX_EVIDENCE_STORE=file
(the default, CX_EVIDENCE_DIR) or s3://bucket/prefix (docs/adr/0020-evidence-beyond-one-disk.md).
"""

from __future__ import annotations

from ledger.evidence_s3 import S3EvidenceStore
from ledger.evidence_store import EvidenceStore, FileEvidenceStore
from workers.settings import Settings


def open_evidence_store(settings: Settings) -> EvidenceStore:
    """The configured store; nothing is contacted until the first put or get."""
    location = settings.evidence_s3
    if location is None:
        return FileEvidenceStore(settings.evidence_dir)
    bucket, prefix = location
    secret = settings.aws_secret_access_key
    return S3EvidenceStore(
        bucket,
        prefix=prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=None if secret is None else secret.get_secret_value(),
    )
