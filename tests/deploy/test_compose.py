"""deploy/compose.yaml is a valid compose file for a whole site, and each service is set up as it must be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, ROLES, compose, compose_env

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
ENGINE_SERVICES = set(ROLES)
SET_UP = {"migrate", "temporal-setup"}
# Words that mark a variable as secret: its value must come from an env file under secrets/, never compose.yaml.
SECRET_WORDS = ("PASSWORD", "PWD", "SECRET", "TOKEN", "API_KEY", "DATABASE_URL")


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    """The compose spec's JSON schema, as vendored in check-jsonschema's wheel (no network)."""
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_follows_the_compose_spec() -> None:
    """check-jsonschema with the compose spec's schema accepts deploy/compose.yaml."""
    result = _validate(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_compose_file_off_the_spec_is_refused(tmp_path: Path) -> None:
    """The validation can fail: a key the spec does not know (a typo of `deploy.replicas`) is refused."""
    doctored = compose() | {
        "services": compose()["services"] | {"worker": compose()["services"]["worker"] | {"replica": 3}}
    }
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(doctored))
    result = _validate(tmp_path / "compose.yaml")
    assert result.returncode != 0
    assert "replica" in result.stdout + result.stderr


def test_the_site_has_every_part() -> None:
    """Temporal with its Postgres and UI, set-up jobs, the app's Postgres, the roles, Prometheus and Grafana."""
    expected = {"temporal-db", "temporal", "temporal-ui", "ledger-db", "finance", "mail", "prometheus", "grafana"}
    assert expected | ENGINE_SERVICES <= set(compose()["services"])
    assert compose()["services"]["worker"]["deploy"]["replicas"] == "${CX_WORKER_REPLICAS:-3}"


@pytest.mark.parametrize("service", sorted(compose()["services"]))
def test_every_service_has_a_healthcheck_and_a_pinned_image(service: str) -> None:
    """A probe on every long-running service; one-shot jobs are awaited by completion instead (compose.yaml says
    why). Every image names a version: no `latest`, no bare name."""
    spec: dict[str, Any] = compose()["services"][service]
    if service in SET_UP:
        assert spec["healthcheck"] == {"disable": True}
        assert spec["restart"] == "no"
    else:
        assert spec["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    image: str = spec["image"]
    tag = image.rsplit(":", 1)[-1].removesuffix("}")
    assert ":" in image, f"{service}: {image} has no tag"
    assert tag not in {"latest", ""}, f"{service}: {image}"


@pytest.mark.parametrize("service", sorted(ENGINE_SERVICES - SET_UP))
def test_engine_processes_start_after_the_set_up_jobs(service: str) -> None:
    """Workers, the dispatcher and the API wait for migrations and search attributes: exited 0, not just started."""
    depends = compose()["services"][service]["depends_on"]
    for job in SET_UP:
        assert depends[job] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("service", sorted(ENGINE_SERVICES))
def test_engine_containers_run_locked_down(service: str) -> None:
    """Read-only root, no capabilities, no privilege escalation, the image's fixed non-root user."""
    spec = compose()["services"][service]
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert "user" not in spec, "the image's USER 10001 is the one the k8s manifests also run as"


@pytest.mark.parametrize("service", sorted(compose()["services"]))
def test_no_secret_is_written_in_compose_yaml(service: str) -> None:
    """Secrets come from secrets/*.env (git-ignored; their .example twins are committed with placeholders)."""
    spec = compose()["services"][service]
    literal = spec.get("environment") or {}
    assert not [name for name in literal if any(word in name for word in SECRET_WORDS)], service
    for env_file in spec.get("env_file", []):
        if env_file.startswith("secrets/"):
            assert (DEPLOY / (env_file + ".example")).exists(), f"{env_file}.example is missing"
        else:
            values = compose_env(service, {"env_file": [env_file]})
            assert not [name for name in values if any(word in name for word in SECRET_WORDS)], env_file


def test_the_secret_files_are_ignored_by_git() -> None:
    """A filled-in secrets/*.env is never committed by mistake."""
    result = subprocess.run(
        ["git", "check-ignore", "-q", str(DEPLOY / "secrets" / "database.env")], timeout=30, check=False
    )
    assert result.returncode == 0
