"""The rules of the evidence storage variables (CX_EVIDENCE_STORE, CX_S3_ENDPOINT_URL, CX_S3_REGION).

Fields of the one Settings (workers/settings.py) use them as validators; each raises ValueError with the
rule, and Settings puts the variable's name in front (docs/adr/0020-evidence-beyond-one-disk.md).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# S3's bucket naming rules (lowercase letters, digits, dots and hyphens, 3 to 63, a letter or digit at both
# ends) and a prefix of the characters S3 calls safe, so a key never needs escaping.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,512}")
_REGION = re.compile(r"[a-z0-9-]{1,64}")


def evidence_store(raw: object) -> object:
    text = str(raw)
    if text == "file":
        return text
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    if not text.startswith("s3://") or not _BUCKET.fullmatch(bucket) or not _PREFIX.fullmatch(prefix):
        raise ValueError("must be `file` or `s3://bucket[/prefix]` (S3's bucket name rules; a prefix of A-Za-z0-9._/-)")
    return f"s3://{bucket}/{prefix.strip('/')}"


def endpoint_url(raw: object) -> object:
    if raw is None:  # unset (Settings validates its defaults too)
        return raw
    text = str(raw)
    url = urlsplit(text)
    if url.scheme not in {"http", "https"} or not url.hostname or url.query or url.fragment:
        raise ValueError("must be an http:// or https:// URL of the S3 API server, e.g. http://127.0.0.1:9000")
    return text.rstrip("/")


def region(raw: object) -> object:
    if raw is None:
        return raw
    if not _REGION.fullmatch(str(raw)):
        raise ValueError("must be a region name such as eu-west-1 (lowercase letters, digits, hyphens)")
    return str(raw)
