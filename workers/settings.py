"""The one Settings: everything a process reads from its environment, read once and passed down.

`cx` (workers/cli.py) reads it once per run, with `Settings.from_env()`, and hands each part to what needs
it: the worker, the dispatcher and the API get their values, client commands a `ClientConfig`
(clients/config.py). Nothing else reads the environment (tests/test_architecture.py keeps it so;
docs/adr/0014-one-way-imports.md). Each field names its variable; a malformed one is refused with one line
that names the variable and the rule, e.g. `CX_API_PORT='http': must be a TCP port number (1-65535)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from clients.config import DEFAULT_API_ENGINE_TIMEOUT_S, DEFAULT_API_MAX_BODY_BYTES
from schemas.codec import PayloadKeyError, PayloadKeys, parse_payload_keys
from schemas.ids import TASK_QUEUE
from workers.evidence_settings import endpoint_url, evidence_store, region
from workers.versioning import Deployment

DEFAULT_STATE_DIR = ".cx"
# The variables of temporalio.envconfig (workers/temporal_config.py) all start with it.
TEMPORAL_PREFIX = "TEMPORAL_"
# A limit on everything: a day covers any start-up or answer; math.inf or NaN would never give up.
MAX_SECONDS = 86_400
# From 1 KiB (a request smaller than that is no request) to 16 MiB (a JSON body is a few KiB).
BODY_BYTES_RANGE = (1024, 16 * 1024 * 1024)
# A worker's tuning, chosen by the lifecycle bench (docs/performance.md, "Sizing"): activities run at once
# (the SDK's default: fewer slots left tasks waiting on the server and cost throughput), the connections of
# the worker's pool they share, and exchanges kept in the sticky cache (about 130 kB each).
DEFAULT_ACTIVITY_SLOTS = 100
DEFAULT_WORKER_POOL_SIZE = 10
DEFAULT_CACHED_WORKFLOWS = 1000
# Observability (issue 15, item 6): the OTLP transport we ship, and the samplers of OTEL_TRACES_SAMPLER we map.
OTLP_PROTOCOL = "http/protobuf"
TRACES_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
# A browser's Origin header: what CX_CODEC_CORS_ORIGIN must look like (issue 16, item 1).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class SettingsError(ValueError):
    """A variable is malformed; the message names it and the rule, in one line."""


def _port(raw: object) -> object:
    if raw is None or isinstance(raw, int):
        return raw
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError("must be a TCP port number (1-65535)")
    return int(text)


def _seconds(raw: object) -> object:
    if isinstance(raw, int | float):
        return raw
    try:
        value = float(str(raw))
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SECONDS:  # NaN fails this too
        raise ValueError(f"must be a number of seconds from 0 to {MAX_SECONDS}")
    return value


def _body_bytes(raw: object) -> object:
    low, high = BODY_BYTES_RANGE
    text = str(raw)
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"must be a number of bytes from {low} to {high}")
    return int(text)


Port = Annotated[int, BeforeValidator(_port)]
Seconds = Annotated[float, BeforeValidator(_seconds)]


class Settings(BaseSettings):
    """Everything a process needs to know about its surroundings (README, "Configuration").

    `database_url` and `temporal_address` are None when the embedded servers should be started (`make
    run`) or, for a client command, found where a running `make run` recorded them (workers/runtime.py).
    """

    # Variables are case-sensitive and an empty one counts as unset, as a shell user expects of `X= cx ...`.
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, frozen=True, extra="ignore")

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default=TASK_QUEUE, validation_alias="CX_TASK_QUEUE")
    state_dir: Path = Field(default=Path(DEFAULT_STATE_DIR), validation_alias="CX_STATE_DIR")
    log_format: str = Field(default="auto", validation_alias="CX_LOG_FORMAT")
    temporal_port: Port | None = Field(default=None, validation_alias="CX_TEMPORAL_PORT")
    temporal_ui_port: Port | None = Field(default=None, validation_alias="CX_TEMPORAL_UI_PORT")
    postgres_port: Port | None = Field(default=None, validation_alias="CX_POSTGRES_PORT")
    finance_webhook_url: str | None = Field(default=None, validation_alias="CX_FINANCE_WEBHOOK_URL")
    notify_email: str | None = Field(default=None, validation_alias="CX_NOTIFY_EMAIL")
    evidence_dir_setting: Path | None = Field(default=None, validation_alias="CX_EVIDENCE_DIR")
    metrics_address: str | None = Field(default=None, validation_alias="CX_METRICS_ADDRESS")
    api_port: Port | None = Field(default=None, validation_alias="CX_API_PORT")
    # How long `cx worker`, `cx dispatcher` and `cx api` wait for Temporal and Postgres at start-up
    # (workers/connect.py) before they exit with UNAVAILABLE.
    connect_timeout_s: Seconds = Field(default=120.0, validation_alias="CX_CONNECT_TIMEOUT_S")
    # The REST API's bounds (issue 11): the largest JSON body it reads (evidence uploads have their own,
    # rules/evidence.py) and how long it waits for Temporal before answering 504.
    api_max_body_bytes: Annotated[int, BeforeValidator(_body_bytes)] = Field(
        default=DEFAULT_API_MAX_BODY_BYTES, validation_alias="CX_API_MAX_BODY_BYTES"
    )
    api_engine_timeout_s: Seconds = Field(
        default=DEFAULT_API_ENGINE_TIMEOUT_S, validation_alias="CX_API_ENGINE_TIMEOUT_S"
    )
    # The API's bearer tokens as JSON, parsed by the API itself (clients/api/static_tokens.py).
    api_tokens: SecretStr | None = Field(default=None, validation_alias="CX_API_TOKENS")
    # Identities, rate limits and secrets hygiene (issue 16, items 3 and 6; ADR 0023). Static tokens from a file
    # re-read when it changes (instead of CX_API_TOKENS, not with it); OIDC bearer tokens of the organisation's
    # sign-in when an issuer and an audience are set; the API's rate limits (0 turns one off).
    api_tokens_file: Path | None = Field(default=None, validation_alias="CX_API_TOKENS_FILE")
    oidc_issuer: str | None = Field(default=None, validation_alias="CX_OIDC_ISSUER")
    oidc_audience: str | None = Field(default=None, validation_alias="CX_OIDC_AUDIENCE")
    oidc_jwks_url: str | None = Field(default=None, validation_alias="CX_OIDC_JWKS_URL")
    oidc_role_claim: str = Field(default="cx_role", min_length=1, validation_alias="CX_OIDC_ROLE_CLAIM")
    oidc_organisations_claim: str = Field(
        default="cx_organisations", min_length=1, validation_alias="CX_OIDC_ORGANISATIONS_CLAIM"
    )
    oidc_partnerships_claim: str = Field(
        default="cx_partnerships", min_length=1, validation_alias="CX_OIDC_PARTNERSHIPS_CLAIM"
    )
    api_write_rate: Annotated[int, Field(ge=0, le=1_000_000)] = Field(default=120, validation_alias="CX_API_WRITE_RATE")
    api_auth_failures: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=20, validation_alias="CX_API_AUTH_FAILURES"
    )
    api_auth_failure_window_s: Annotated[int, Field(ge=1, le=MAX_SECONDS)] = Field(
        default=600, validation_alias="CX_API_AUTH_FAILURE_WINDOW_S"
    )
    # End of identities, rate limits and secrets hygiene.
    # The outbox dispatcher's (workers/dispatcher.py): the key signing every webhook, and the mail relay.
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="CX_WEBHOOK_SECRET")
    # The secret before a rotation (issue 16, item 5): every webhook carries a signature with each of the two.
    webhook_previous_secret: SecretStr | None = Field(default=None, validation_alias="CX_WEBHOOK_PREVIOUS_SECRET")
    smtp_host: str = Field(default="127.0.0.1", validation_alias="CX_SMTP_HOST")
    smtp_port: Port = Field(default=25, validation_alias="CX_SMTP_PORT")
    smtp_sender: str = Field(default="clusterxchange@localhost", validation_alias="CX_SMTP_SENDER")
    # The dispatcher on maintained parts (issue 15, item 8; docs/adr/0019): SMTP transport security (starttls is
    # required by default; none only for a relay on the same host), AUTH, and a private CA for the relay's
    # certificate (workers/email_delivery.py).
    smtp_tls: Literal["starttls", "tls", "none"] = Field(default="starttls", validation_alias="CX_SMTP_TLS")
    smtp_username: str | None = Field(default=None, validation_alias="CX_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="CX_SMTP_PASSWORD")
    smtp_ca_file: Path | None = Field(default=None, validation_alias="CX_SMTP_CA_FILE")
    # A worker's tuning, chosen by measurement (docs/performance.md, "Sizing").
    worker_activity_slots: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=DEFAULT_ACTIVITY_SLOTS, validation_alias="CX_WORKER_ACTIVITY_SLOTS"
    )
    worker_pool_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=DEFAULT_WORKER_POOL_SIZE, validation_alias="CX_WORKER_POOL_SIZE"
    )
    worker_cached_workflows: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=DEFAULT_CACHED_WORKFLOWS, validation_alias="CX_WORKER_CACHED_WORKFLOWS"
    )
    # Worker Versioning (workers/versioning.py, docs/operations.md): both or neither; unset, the worker
    # is unversioned (the local stack, tests).
    worker_deployment: str | None = Field(default=None, validation_alias="CX_WORKER_DEPLOYMENT")
    build_id: str | None = Field(default=None, validation_alias="CX_BUILD_ID")
    # Payload encryption and the codec server (issue 16, item 1; schemas/codec.py, docs/adr/0022): the keys
    # (JSON or id:base64, never printed), the id of the one that encrypts, and the Temporal UI's origin that
    # may call the API's /codec endpoints from a browser (CORS).
    payload_keys: SecretStr | None = Field(default=None, validation_alias="CX_PAYLOAD_KEYS", repr=False)
    payload_key_id: str | None = Field(default=None, validation_alias="CX_PAYLOAD_KEY_ID")
    codec_cors_origin: str | None = Field(default=None, validation_alias="CX_CODEC_CORS_ORIGIN")
    # Every TEMPORAL_* variable (TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE, ...),
    # handed whole to temporalio.envconfig by workers/temporal_config.py: the SDKs' own names and rules, read
    # here with the rest of the environment (`from_env` fills it; never from a variable of its own name).
    temporal_environment: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    # --- Observability (issue 15, item 6; workers/tracing.py, docs/adr/0018): OpenTelemetry's standard
    # variables, read here like every other; tracing is off, nothing installed, while the endpoint is unset.
    otel_exporter_otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_protocol: str = Field(default="http/protobuf", validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL")
    otel_exporter_otlp_headers: SecretStr | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_HEADERS")
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    otel_traces_sampler: str = Field(default="parentbased_always_on", validation_alias="OTEL_TRACES_SAMPLER")
    otel_traces_sampler_arg: Annotated[float, Field(ge=0, le=1)] = Field(
        default=1.0, validation_alias="OTEL_TRACES_SAMPLER_ARG"
    )
    # How often `cx api` refreshes the programme gauges it serves at /metrics (ledger/gauges.py).
    gauge_interval_s: Seconds = Field(default=15.0, validation_alias="CX_GAUGE_INTERVAL_S")

    @field_validator("otel_exporter_otlp_protocol")
    @classmethod
    def _otlp_protocol(cls, protocol: str) -> str:
        # Only the HTTP exporter is installed: the gRPC one would bring grpcio's wheels for one transport.
        if protocol != OTLP_PROTOCOL:
            raise ValueError(f"must be {OTLP_PROTOCOL!r} (the gRPC exporter is not installed)")
        return protocol

    @field_validator("otel_traces_sampler")
    @classmethod
    def _sampler(cls, sampler: str) -> str:
        if sampler not in TRACES_SAMPLERS:
            raise ValueError(f"must be one of {', '.join(sorted(TRACES_SAMPLERS))}")
        return sampler

    @field_validator("gauge_interval_s")
    @classmethod
    def _gauge_interval(cls, seconds: float) -> float:
        if seconds < 1:
            raise ValueError("must be at least 1 second (each refresh runs a few queries on Postgres)")
        return seconds

    # --- end of observability

    # Evidence storage (issue 15, item 7; docs/adr/0020-evidence-beyond-one-disk.md): `file` keeps the files in
    # CX_EVIDENCE_DIR; `s3://bucket/prefix` in S3-compatible object storage, at CX_S3_ENDPOINT_URL (MinIO, Ceph)
    # or AWS itself, with these keys or, without them, the AWS default chain (role, web identity).
    evidence_store_setting: Annotated[str, BeforeValidator(evidence_store)] = Field(
        default="file", validation_alias="CX_EVIDENCE_STORE"
    )
    s3_endpoint_url: Annotated[str | None, BeforeValidator(endpoint_url)] = Field(
        default=None, validation_alias="CX_S3_ENDPOINT_URL"
    )
    s3_region: Annotated[str | None, BeforeValidator(region)] = Field(default=None, validation_alias="CX_S3_REGION")
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(default=None, validation_alias="AWS_SECRET_ACCESS_KEY")

    @model_validator(mode="after")
    def _evidence_store_parts(self) -> Settings:
        # A variable that would be silently ignored is refused: it says the operator meant another store.
        if self.evidence_s3 is None:
            if self.s3_endpoint_url is not None or self.s3_region is not None:
                raise ValueError("CX_S3_ENDPOINT_URL and CX_S3_REGION: set only with CX_EVIDENCE_STORE=s3://bucket")
        elif self.evidence_dir_setting is not None:
            raise ValueError("CX_EVIDENCE_DIR: not used with CX_EVIDENCE_STORE=s3://...; unset one of them")
        elif (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both, or neither for the default chain")
        return self

    @property
    def evidence_s3(self) -> tuple[str, str] | None:
        """The bucket and key prefix of CX_EVIDENCE_STORE=s3://bucket/prefix, None for the local directory."""
        if self.evidence_store_setting == "file":
            return None
        bucket, _, prefix = self.evidence_store_setting.removeprefix("s3://").partition("/")
        return bucket, prefix

    # --- end of evidence storage

    @field_validator("state_dir", "evidence_dir_setting")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        # Resolved once, so that a process that changes its directory later still means the same place.
        return None if path is None else path.resolve()

    @field_validator("api_engine_timeout_s")
    @classmethod
    def _above_zero(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be a number of seconds above 0")
        return seconds

    @model_validator(mode="after")
    def _deployment_and_build(self) -> Settings:
        if (self.worker_deployment is None) != (self.build_id is None):
            raise ValueError("CX_WORKER_DEPLOYMENT and CX_BUILD_ID: set both (a versioned worker) or neither")
        return self

    @model_validator(mode="after")
    def _payload_keys(self) -> Settings:
        # A model validator, not a field's: a field's refusal quotes the value, and this one is a secret.
        if self.payload_keys is None and self.payload_key_id is not None:
            raise ValueError("CX_PAYLOAD_KEY_ID: set without CX_PAYLOAD_KEYS (the keys it chooses from)")
        try:
            _ = self.payload_keyring
        except PayloadKeyError as error:
            raise ValueError(str(error)) from None
        return self

    @field_validator("codec_cors_origin")
    @classmethod
    def _origin(cls, origin: str | None) -> str | None:
        if origin is not None and not _ORIGIN.fullmatch(origin):
            raise ValueError(
                "must be an origin, scheme://host[:port] with no path, e.g. https://temporal-ui.example.org"
            )
        return origin

    @property
    def payload_keyring(self) -> PayloadKeys | None:
        """The payload keys of CX_PAYLOAD_KEYS and CX_PAYLOAD_KEY_ID (checked when Settings were read), or None."""
        if self.payload_keys is None:
            return None
        return parse_payload_keys(self.payload_keys.get_secret_value(), self.payload_key_id)

    @model_validator(mode="after")
    def _one_token_source_and_whole_oidc(self) -> Settings:
        # Identities (issue 16): two token tables would leave it unclear which one rotation edits; an issuer
        # without an audience would accept tokens minted for any other application of the organisation.
        if self.api_tokens is not None and self.api_tokens_file is not None:
            raise ValueError("CX_API_TOKENS and CX_API_TOKENS_FILE: set one of them, not both")
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError("CX_OIDC_ISSUER and CX_OIDC_AUDIENCE: set both (OIDC bearer tokens) or neither")
        return self

    @property
    def deployment(self) -> Deployment | None:
        """This worker build under Worker Versioning, when CX_WORKER_DEPLOYMENT and CX_BUILD_ID are set."""
        if self.worker_deployment is None or self.build_id is None:
            return None
        return Deployment(self.worker_deployment, self.build_id)

    @property
    def evidence_dir(self) -> Path:
        """Where uploaded evidence is stored: CX_EVIDENCE_DIR, else `<CX_STATE_DIR>/evidence`."""
        return self.evidence_dir_setting or self.state_dir / "evidence"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _MAPPING_ONLY.get():
            return (init_settings,)
        # The environment's TEMPORAL_* variables as one field, from pydantic-settings' own read of it.
        return (init_settings, env_settings, _TemporalVariables(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the process's environment, or of `environ` (tests, tools) and nothing else.

        Raises SettingsError naming each malformed variable. The process's own read happens once, in
        workers/cli.py; a mapping given here is parsed by the same fields and rules.
        """
        try:
            if environ is None:
                return cls()
            # The mapping alone: pydantic-settings' sources (the process environment) are not consulted, not even
            # for a field the mapping leaves out (model_validate alone would still read them).
            values: dict[str, Any] = {name: value for name, value in environ.items() if value != ""}
            token = _MAPPING_ONLY.set(True)
            try:
                return cls(**values, temporal_environment=_temporal_variables(environ))
            finally:
                _MAPPING_ONLY.reset(token)
        except ValidationError as error:
            raise SettingsError(_one_line(error)) from None


# Set while `from_env` parses a given mapping: the sources are then that mapping and nothing else.
_MAPPING_ONLY: ContextVar[bool] = ContextVar("settings_from_mapping_only", default=False)


class _TemporalVariables(EnvSettingsSource):
    """`temporal_environment`: every non-empty TEMPORAL_* variable of the environment pydantic-settings read."""

    def __call__(self) -> dict[str, Any]:
        variables = {name: value for name, value in self.env_vars.items() if value is not None}
        return {"temporal_environment": _temporal_variables(variables)}


def _temporal_variables(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name.startswith(TEMPORAL_PREFIX) and value != ""}


def _one_line(error: ValidationError) -> str:
    return "; ".join(_problem(e["loc"], e["input"], str(e["msg"])) for e in error.errors(include_url=False))


def _problem(loc: tuple[int | str, ...], value: object, message: str) -> str:
    message = message.removeprefix("Value error, ")
    # A rule across variables (a model validator) has no one location; its message names the variables.
    return f"{'.'.join(map(str, loc))}={value!r}: {message}" if loc else message
