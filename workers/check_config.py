"""`cx worker|dispatcher|api --check-config`: is this environment complete for the role, without connecting?

A deployment sets variables in a manifest and learns that one is missing when a pod crash-loops. This runs
every check the process itself runs before it connects (the one Settings, the Temporal connection with its
certificate files, the role's own requirements), prints what the process would use (never a secret) and
exits 0, or exits 2 with the line naming the variable. The container image's entry point runs it in CI with
exactly the variables the manifests set (tests/deploy/).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ledger.pool import ServerUnreachable, redact_dsn
from schemas.codec import EncryptionCodec
from workers.runtime import resolve_database_url, resolve_temporal_connection
from workers.settings import Settings, SettingsError

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})


def common_lines(settings: Settings, *, temporal: bool = True) -> list[str]:
    """What every process needs: Postgres, and Temporal when the role talks to it."""
    lines = [f"postgres   {redact_dsn(_database_url(settings))}"]
    if temporal:
        lines.append(f"temporal   {_temporal(settings)}")
        lines.append(f"task queue {settings.task_queue}")
        lines.append(f"payloads   {_payloads(settings)}")
    if settings.metrics_address:
        check_host_port("CX_METRICS_ADDRESS", settings.metrics_address)
        lines.append(f"metrics    http://{settings.metrics_address}/metrics")
    return lines


def temporal_lines(settings: Settings) -> list[str]:
    """What `cx temporal setup` needs: the Temporal connection alone."""
    return [f"temporal   {_temporal(settings)}"]


def worker_lines(settings: Settings, finance_webhook_url: str) -> list[str]:
    """A worker's: the common part, where payment orders go, its build and tuning."""
    check_http_url("CX_FINANCE_WEBHOOK_URL", finance_webhook_url)
    build = settings.deployment
    return [
        *common_lines(settings),
        f"finance    {finance_webhook_url}",
        f"evidence   {evidence_location(settings)}",
        f"build      {build.name} {build.build_id}" if build else "build      unversioned",
        f"tuning     {settings.worker_activity_slots} activity slots, {settings.worker_pool_size} connections, "
        f"{settings.worker_cached_workflows} cached exchanges",
    ]


def evidence_location(settings: Settings) -> str:
    """Where the process stores and reads evidence (CX_EVIDENCE_STORE): the directory, or the bucket and server."""
    if settings.evidence_s3 is None:
        return str(settings.evidence_dir)
    return f"{settings.evidence_store_setting} at {settings.s3_endpoint_url or 'AWS S3'}"


def check_http_url(variable: str, url: str) -> None:
    """Refuse a URL a process would POST to that is not absolute http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{variable}={url!r}: must be an absolute http:// or https:// URL")


def check_host_port(variable: str, address: str) -> None:
    """Refuse a listening address that is not host:port."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"{variable}={address!r}: must be host:port, e.g. 0.0.0.0:9464")


def _database_url(settings: Settings) -> str:
    try:
        url = resolve_database_url(settings)
    except ServerUnreachable as error:
        raise SettingsError(str(error)) from None
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise SettingsError(f"DATABASE_URL={redact_dsn(url)!r}: must be a postgresql:// URL")
    return url


def _payloads(settings: Settings) -> str:
    # The codec the process would use: CX_PAYLOAD_KEYS', or a running `make run`'s own (workers/payload_keys.py).
    codec = resolve_temporal_connection(settings).data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        return "plaintext (CX_PAYLOAD_KEYS unset: the Temporal UI and database show every payload)"
    return f"encrypted, AES-256-GCM, key {codec.current_key_id} ({len(codec.key_ids)} known)"


def _temporal(settings: Settings) -> str:
    try:
        return resolve_temporal_connection(settings).describe()
    except ServerUnreachable as error:
        raise SettingsError(str(error)) from None
