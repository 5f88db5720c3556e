"""Every process reaches Temporal as the SDKs do: temporalio.envconfig variables and profiles (issue 15, item 1).

The loaded configuration is checked field by field, and refusals name the variable. The dev server has no
TLS option, so the end-to-end tests put a TLS terminator in front of the session's dev server: an asyncio
server with a certificate from a test CA (trustme) that requires a client certificate (mTLS) and speaks
HTTP/2 (ALPN h2, as gRPC needs). A client with the configured CA and client certificate gets through; one
without a client certificate, or trusting another CA, does not; and `cx temporal setup` as a process reaches
the namespace through it with nothing but the variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from temporalio.testing import WorkflowEnvironment

from ledger.pool import ServerUnreachable
from workers.connect import connect_temporal
from workers.devstack import free_port
from workers.settings import Settings, SettingsError
from workers.temporal_config import TemporalConnection, load_connection

ROOT = Path(__file__).resolve().parents[2]
CX = [sys.executable, "-m", "workers.cli"]


def connection(**environ: str) -> TemporalConnection:
    return load_connection(Settings.from_env(environ))


def refusal(**environ: str) -> str:
    with pytest.raises(SettingsError) as refused:
        connection(**environ)
    return str(refused.value)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("cx-worker@clusterxchange.example")
    paths = {name: folder / f"{name}.pem" for name in Certificates.__dataclass_fields__}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    other.cert_pem.write_to_path(str(paths["other_ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server_cert"]))
    server.private_key_pem.write_to_path(str(paths["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return Certificates(**paths)


# -- the loaded configuration -----------------------------------------------------------------------------


def test_nothing_set_means_the_local_stack_plaintext_in_the_default_namespace() -> None:
    loaded = connection()
    assert (loaded.address, loaded.namespace, loaded.tls, loaded.api_key) == (None, "default", None, None)


def test_the_variables_give_address_namespace_and_grpc_headers() -> None:
    loaded = connection(
        TEMPORAL_ADDRESS="temporal.internal:7233",
        TEMPORAL_NAMESPACE="clusterxchange",
        TEMPORAL_GRPC_META_X_TENANT="cx",
    )
    assert (loaded.address, loaded.namespace, loaded.tls) == ("temporal.internal:7233", "clusterxchange", None)
    assert dict(loaded.rpc_metadata) == {"x-tenant": "cx"}
    assert loaded.describe() == "temporal.internal:7233 namespace clusterxchange (plaintext)"


def test_an_api_key_turns_tls_on_and_never_shows() -> None:
    loaded = connection(TEMPORAL_ADDRESS="ns.acct.tmprl.cloud:7233", TEMPORAL_API_KEY="secret-key-value")
    assert loaded.api_key == "secret-key-value"
    assert loaded.tls is not None
    assert loaded.tls.client_cert is None
    assert "secret-key-value" not in repr(loaded) + loaded.describe()
    assert loaded.describe().endswith("(TLS, API key)")


def test_tls_can_be_turned_off_explicitly_even_with_an_api_key() -> None:
    loaded = connection(TEMPORAL_ADDRESS="proxy:7233", TEMPORAL_API_KEY="k", TEMPORAL_TLS="false")
    assert loaded.tls is None


def test_mtls_files_are_read_at_start(certificates: Certificates) -> None:
    loaded = connection(
        TEMPORAL_ADDRESS="ns.acct.tmprl.cloud:7233",
        TEMPORAL_TLS_CLIENT_CERT_PATH=str(certificates.client_cert),
        TEMPORAL_TLS_CLIENT_KEY_PATH=str(certificates.client_key),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(certificates.ca),
        TEMPORAL_TLS_SERVER_NAME="frontend.example",
    )
    assert loaded.tls is not None
    assert loaded.tls.client_cert == certificates.client_cert.read_bytes()
    assert loaded.tls.client_private_key == certificates.client_key.read_bytes()
    assert loaded.tls.server_root_ca_cert == certificates.ca.read_bytes()
    assert loaded.tls.domain == "frontend.example"
    assert loaded.describe().endswith("(TLS with a client certificate (mTLS), own CA)")


def test_a_profile_file_is_read_and_the_variables_override_it(tmp_path: Path) -> None:
    profiles = tmp_path / "temporal.toml"
    profiles.write_text(
        '[profile.default]\naddress = "temporal.internal:7233"\nnamespace = "staging"\n\n'
        '[profile.cloud]\naddress = "cx.acct.tmprl.cloud:7233"\nnamespace = "cx.acct"\napi_key = "k"\n'
    )
    default = connection(TEMPORAL_CONFIG_FILE=str(profiles))
    assert (default.address, default.namespace, default.tls) == ("temporal.internal:7233", "staging", None)
    cloud = connection(TEMPORAL_CONFIG_FILE=str(profiles), TEMPORAL_PROFILE="cloud")
    assert (cloud.address, cloud.namespace, cloud.api_key) == ("cx.acct.tmprl.cloud:7233", "cx.acct", "k")
    assert cloud.tls is not None
    overridden = connection(TEMPORAL_CONFIG_FILE=str(profiles), TEMPORAL_NAMESPACE="production")
    assert (overridden.address, overridden.namespace) == ("temporal.internal:7233", "production")


def test_refusals_name_the_variable_and_the_rule(tmp_path: Path, certificates: Certificates) -> None:
    assert refusal(TEMPORAL_ADDRESS="temporal") == "TEMPORAL_ADDRESS='temporal': must be host:port, e.g. temporal:7233"
    assert refusal(TEMPORAL_CONFIG_FILE=str(tmp_path / "none.toml")).endswith("none.toml': no such file")
    assert refusal(TEMPORAL_TLS="maybe") == "TEMPORAL_TLS='maybe': must be true or false"
    assert refusal(TEMPORAL_TLS_CLIENT_CERT_PATH="/nowhere/cert.pem").startswith(
        "TEMPORAL_TLS_CLIENT_CERT_PATH='/nowhere/cert.pem': no such file"
    )
    assert refusal(TEMPORAL_TLS_CLIENT_CERT_PATH=str(certificates.client_cert)).startswith(
        "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH: set both"
    )
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82\x01\x0a")
    assert refusal(TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(not_pem)).startswith(
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH: not a PEM file"
    )
    profiles = tmp_path / "temporal.toml"
    profiles.write_text('[profile.default]\naddress = "t:7233"\n')
    assert "TEMPORAL_PROFILE='staging'" in refusal(TEMPORAL_CONFIG_FILE=str(profiles), TEMPORAL_PROFILE="staging")


# -- end to end through TLS -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tls_terminator(target: str, certificates: Certificates) -> AsyncIterator[int]:
    """A port that speaks TLS (client certificate required, ALPN h2) and relays the plaintext to `target`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    context.load_verify_locations(certificates.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, _, port = target.rpartition(":")
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        for task in (
            asyncio.create_task(pipe(client_reader, server_writer)),
            asyncio.create_task(pipe(server_reader, client_writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    listen_port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, ssl=context)
    try:
        yield listen_port
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def mtls_variables(certificates: Certificates) -> dict[str, str]:
    return {
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.ca),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(certificates.client_cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certificates.client_key),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }


async def test_a_client_reaches_the_namespace_over_mtls(
    dev_server_env: WorkflowEnvironment, certificates: Certificates, mtls_variables: dict[str, str]
) -> None:
    target = dev_server_env.client.service_client.config.target_host
    async with tls_terminator(target, certificates) as port:
        loaded = connection(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", **mtls_variables)
        client = await connect_temporal(loaded, timeout_s=0)
        # A real call through the TLS session: the dev server answers with the namespace's workflows.
        assert await client.count_workflows() is not None
        assert client.namespace == "default"


async def test_without_a_client_certificate_or_with_another_ca_the_server_is_not_reached(
    dev_server_env: WorkflowEnvironment, certificates: Certificates, mtls_variables: dict[str, str]
) -> None:
    target = dev_server_env.client.service_client.config.target_host
    async with tls_terminator(target, certificates) as port:
        no_client_cert = {k: v for k, v in mtls_variables.items() if "CLIENT" not in k}
        without_certificate = connection(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", **no_client_cert)
        with pytest.raises(ServerUnreachable):
            await connect_temporal(without_certificate, timeout_s=0)
        other_ca = {**mtls_variables, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.other_ca)}
        with pytest.raises(ServerUnreachable):
            await connect_temporal(connection(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", **other_ca), timeout_s=0)


async def test_a_process_command_reaches_temporal_over_mtls_from_the_variables_alone(
    dev_server_env: WorkflowEnvironment, certificates: Certificates, mtls_variables: dict[str, str], tmp_path: Path
) -> None:
    target = dev_server_env.client.service_client.config.target_host
    async with tls_terminator(target, certificates) as port:
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CX_STATE_DIR": str(tmp_path / "state"),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            **mtls_variables,
        }
        command = [*CX, "temporal", "setup"]
        setup = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
        )
    assert setup.returncode == 0, setup.stderr
    # The session's dev server was started with every search attribute: the command found them in place (and
    # then created or updated the nightly reconciliation's schedule, tests/reconcile/).
    assert setup.stdout.splitlines()[0] == "search attributes already in place"
