"""How every process reaches Temporal: `temporalio.envconfig`, the SDKs' shared client configuration.

The same variables and TOML profiles configure our processes, the `temporal` CLI and the other services'
SDKs (Go, Java, TypeScript), so ops write one configuration for all of them (docs/deploy.md):

- `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`: the frontend and the namespace;
- `TEMPORAL_API_KEY`: an API key (Temporal Cloud); it turns TLS on, as every SDK does;
- `TEMPORAL_TLS`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`,
  `TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_CLIENT_KEY_PATH`: TLS and mTLS client certificates;
- `TEMPORAL_CONFIG_FILE` and `TEMPORAL_PROFILE`: a TOML file of profiles (default
  `~/.config/temporalio/temporal.toml` when it exists), which the variables above override;
- `TEMPORAL_GRPC_META_<NAME>`: gRPC headers sent with every call.

The one Settings captures these variables when it reads the environment (workers/settings.py), and they are
handed to envconfig here as its whole environment, so that nothing else reads os.environ. Everything is
loaded and every certificate file read once, at start-up: a missing file or a malformed profile is refused
then with a line naming the variable, not on the first TLS handshake minutes later (`cx worker
--check-config` shows the result without connecting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.service import TLSConfig

from schemas.converter import DATA_CONVERTER, data_converter
from workers.settings import Settings, SettingsError

DEFAULT_NAMESPACE = "default"
# Which variable names each TLS file, for the refusal of one that cannot be read.
_TLS_FILE_VARIABLES = {
    "server_root_ca_cert": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "client_cert": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "client_private_key": "TEMPORAL_TLS_CLIENT_KEY_PATH",
}
_BOOLEANS = frozenset({"true", "false", "1", "0"})


@dataclass(frozen=True)
class TemporalConnection:
    """Everything `Client.connect` needs to reach one namespace, loaded and checked.

    `address` is None when nothing configures one: the process then looks for a running `make run`
    (workers/runtime.py). The API key never appears in `repr` or in `describe`.
    """

    address: str | None
    namespace: str = DEFAULT_NAMESPACE
    tls: TLSConfig | None = None
    api_key: str | None = field(default=None, repr=False)
    rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The payload codec travels with the connection (issue 16, item 1): whatever connects, encrypts.
    data_converter: DataConverter = field(default=DATA_CONVERTER, repr=False, compare=False)

    def at(self, address: str) -> TemporalConnection:
        """The same connection to another address (the one a running `make run` recorded)."""
        return dataclasses.replace(self, address=address)

    def describe(self) -> str:
        """One line for ops: where, which namespace, how secured (never the key or a certificate)."""
        if self.tls is None:
            security = "plaintext"
        elif self.tls.client_cert is not None:
            security = "TLS with a client certificate (mTLS)"
        else:
            security = "TLS"
        if self.tls is not None and self.tls.server_root_ca_cert is not None:
            security += ", own CA"
        if self.api_key:
            security += ", API key"
        address = self.address or "<the running `make run` stack>"
        return f"{address} namespace {self.namespace} ({security})"


def load_connection(settings: Settings) -> TemporalConnection:
    """The connection the environment and the profile file describe; SettingsError names what is wrong."""
    _check_variables(settings.temporal_environment)
    try:
        # The profile's name comes from TEMPORAL_PROFILE in the same mapping.
        profile = ClientConfigProfile.load(override_env_vars=settings.temporal_environment)
    except (RuntimeError, ValueError, OSError) as error:
        # The bridge reports a malformed file, an unknown profile and a bad TEMPORAL_TLS alike.
        raise SettingsError(f"{_profile_source(settings)}: {_reason(error)}") from None
    if profile.address is not None:
        check_temporal_address(profile.address)
    tls = _tls(profile.tls, api_key=profile.api_key)
    return TemporalConnection(
        address=profile.address,
        namespace=profile.namespace or DEFAULT_NAMESPACE,
        tls=tls,
        api_key=profile.api_key,
        rpc_metadata=dict(profile.grpc_meta),
        data_converter=data_converter(settings.payload_keyring),
    )


def check_temporal_address(address: str) -> None:
    """Refuse a TEMPORAL_ADDRESS that is not host:port before waiting on it for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"TEMPORAL_ADDRESS={address!r}: must be host:port, e.g. temporal:7233")


def _check_variables(environment: Mapping[str, str]) -> None:
    # envconfig skips a named file that does not exist and reads any TEMPORAL_TLS other than "false" as true;
    # for a process about to run for months either is a typo to refuse now.
    config_file = environment.get("TEMPORAL_CONFIG_FILE")
    if config_file is not None and not Path(config_file).is_file():
        raise SettingsError(f"TEMPORAL_CONFIG_FILE={config_file!r}: no such file")
    tls = environment.get("TEMPORAL_TLS")
    if tls is not None and tls.lower() not in _BOOLEANS:
        raise SettingsError(f"TEMPORAL_TLS={tls!r}: must be true or false")


def _tls(config: ClientConfigTLS | None, *, api_key: str | None) -> TLSConfig | None:
    # As in every SDK: an API key alone means TLS with the system's roots; TEMPORAL_TLS=false turns it off.
    if config is None:
        return TLSConfig() if api_key else None
    if config.disabled is True:
        return None
    for name, variable in _TLS_FILE_VARIABLES.items():
        source = getattr(config, name)
        if isinstance(source, Path) and not source.is_file():
            raise SettingsError(f"{variable}={str(source)!r}: no such file")
    if (config.client_cert is None) != (config.client_private_key is None):
        raise SettingsError(
            "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH: set both (mTLS) or neither"
        )
    try:
        tls = config.to_connect_tls_config()
    except OSError as error:
        raise SettingsError(f"TEMPORAL_TLS_*: {_reason(error)}") from None
    assert isinstance(tls, TLSConfig), "disabled TLS was handled above"
    for name, variable in _TLS_FILE_VARIABLES.items():
        content = getattr(tls, name)
        if content is not None and b"-----BEGIN " not in content:
            raise SettingsError(f"{variable}: not a PEM file (no '-----BEGIN ' line)")
    return tls


def _profile_source(settings: Settings) -> str:
    where = settings.temporal_environment.get("TEMPORAL_CONFIG_FILE", "the Temporal profile file")
    profile = settings.temporal_environment.get("TEMPORAL_PROFILE", "default")
    return f"TEMPORAL_CONFIG_FILE={where!r}, TEMPORAL_PROFILE={profile!r}"


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
