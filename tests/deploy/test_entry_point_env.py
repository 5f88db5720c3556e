"""Each process starts with only the variables its manifest sets: `cx <role> --check-config` in exactly that env.

For every engine process of deploy/compose.yaml and of each kustomize overlay, the environment is collected the way
the container would get it (tests/deploy/manifests.py: the image's ENV, env files or ConfigMaps, secrets as dummy
values, files mounted from secrets as temporary files), and the role's own `cx` arguments run with
`--check-config`, which validates the Settings and everything the role needs and exits 0 without connecting (exit 2
naming the variable otherwise). The dev servers are blocked too (no_dev_servers/), as in the image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    OVERLAYS,
    ROLES,
    compose,
    compose_env,
    render,
    secret_mounts,
    workload_args,
    workload_env,
)

CX = Path(sys.executable).parent / "cx"
BLOCKER = Path(__file__).parent / "no_dev_servers"


def check_config(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`cx <args> --check-config` with `env` and nothing else (plus the dev-server blocker on PYTHONPATH)."""
    assert "PYTHONPATH" not in env, "a manifest sets PYTHONPATH: the image's venv would not be used as built"
    return subprocess.run(
        [str(CX), *args, "--check-config"],
        env={**env, "PYTHONPATH": str(BLOCKER)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _local_paths(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The image's writable directories (CX_STATE_DIR, CX_EVIDENCE_DIR under /var/lib/cx) under tmp_path."""
    return {
        name: value.replace("/var/lib/cx", str(tmp_path / "var-lib-cx")) if value.startswith("/var/lib/cx") else value
        for name, value in env.items()
    }


@pytest.fixture(scope="module")
def client_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A throwaway self-signed client certificate and key (openssl), standing in for a secret of type tls."""
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=cx-test", "-keyout", str(where / "tls.key"), "-out", str(where / "tls.crt")],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return {"tls.crt": (where / "tls.crt").read_bytes(), "tls.key": (where / "tls.key").read_bytes()}


def _mounted_secret_files(
    env: dict[str, str], mounts: dict[str, str], files: dict[str, bytes], tmp_path: Path
) -> dict[str, str]:
    """Every variable naming a file under a secret's mount path points at a temporary file with that key's content."""
    out = dict(env)
    for mount_path in mounts:
        local = tmp_path / "mounts" / mount_path.strip("/").replace("/", "_")
        local.mkdir(parents=True, exist_ok=True)
        for name, value in env.items():
            if value.startswith(mount_path + "/"):
                key = value.removeprefix(mount_path + "/")
                (local / key).write_bytes(files[key])
                out[name] = str(local / key)
    return out


@pytest.mark.parametrize("service", list(ROLES))
def test_each_compose_service_starts_with_its_variables(service: str, tmp_path: Path) -> None:
    """deploy/compose.yaml's env files and environment are all the role needs (exit 0, no variable missing)."""
    spec = compose()["services"][service]
    env = _local_paths(compose_env(service), tmp_path)
    result = check_config(list(spec["command"]), env, tmp_path)
    assert result.returncode == 0, f"cx {' '.join(spec['command'])} --check-config: {result.stderr}{result.stdout}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("role", list(ROLES))
def test_each_kubernetes_workload_starts_with_its_variables(
    overlay: str, role: str, client_pair: dict[str, bytes], tmp_path: Path
) -> None:
    """Each overlay's ConfigMap, secret references and mounted files are all the role needs (exit 0)."""
    kind, name = ROLES[role]
    docs = render(overlay)
    env = _local_paths(workload_env(docs, kind, name), tmp_path)
    env = _mounted_secret_files(env, secret_mounts(docs, kind, name), client_pair, tmp_path)
    args = workload_args(docs, kind, name)
    result = check_config(args, env, tmp_path)
    assert result.returncode == 0, f"{overlay} {kind}/{name}: cx {' '.join(args)}: {result.stderr}{result.stdout}"


def test_a_missing_variable_is_named() -> None:
    """The check can fail: a worker without CX_FINANCE_WEBHOOK_URL exits 2 naming it (the old deploy/ did that)."""
    env = compose_env("worker")
    del env["CX_FINANCE_WEBHOOK_URL"]
    result = check_config(["worker"], env, Path.cwd())
    assert result.returncode == 2
    assert "CX_FINANCE_WEBHOOK_URL" in result.stderr + result.stdout


@pytest.mark.parametrize(("service", "variable"), [("migrate", "DATABASE_URL"), ("temporal-setup", "TEMPORAL_ADDRESS")])
def test_the_set_up_checks_can_fail(service: str, variable: str, tmp_path: Path) -> None:
    """The set-up jobs' checks are not vacuous: without the variable each needs, they fail naming it."""
    env = _local_paths(compose_env(service), tmp_path)
    del env[variable]
    result = check_config(list(compose()["services"][service]["command"]), env, tmp_path)
    assert result.returncode != 0
    assert variable in result.stderr


def test_a_certificate_path_without_its_mount_is_named(tmp_path: Path) -> None:
    """The mTLS check is real: the overlay's certificate path, with no file behind it, stops the worker (exit 2)."""
    env = _local_paths(workload_env(render("temporal-cloud-mtls"), "Deployment", "cx-worker"), tmp_path)
    result = check_config(["worker"], env, tmp_path)
    assert result.returncode == 2
    assert "TEMPORAL_TLS_CLIENT_CERT_PATH" in result.stderr + result.stdout
