"""deploy/k8s: every overlay renders (kustomize in kubectl) and validates strictly for two Kubernetes versions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import OVERLAYS, ROLES, find, pod_spec, render, rendered_text

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# The newest schemas kubernetes-validate ships and one three minor versions older (a cluster not yet upgraded).
KUBERNETES_VERSIONS = ("1.37.0", "1.34.0")
DEPLOYMENTS = [name for kind, name in ROLES.values() if kind == "Deployment"]
JOBS = [name for kind, name in ROLES.values() if kind == "Job"]
IMAGE = "registry.example.org/clusterxchange:0.1.0"


def _validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "--quiet", "-k", version, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_validates_strictly(overlay: str, version: str, tmp_path: Path) -> None:
    """Every rendered resource matches Kubernetes' schema, unknown fields refused (--strict)."""
    (tmp_path / "rendered.yaml").write_text(rendered_text(overlay))
    result = _validate(tmp_path / "rendered.yaml", version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_manifest_off_the_schema_is_refused(tmp_path: Path) -> None:
    """The validation can fail: a misspelt field (readinesProbe) in a Deployment is refused under --strict."""
    docs = render("local")
    container = pod_spec(find(docs, "Deployment", "cx-worker"))["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    (tmp_path / "doctored.yaml").write_text(yaml.safe_dump_all(docs))
    result = _validate(tmp_path / "doctored.yaml", KUBERNETES_VERSIONS[0])
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DEPLOYMENTS + JOBS)
def test_every_workload_is_locked_down_and_bounded(overlay: str, name: str) -> None:
    """Non-root, seccomp RuntimeDefault, read-only root, no capabilities, requests and limits, the pinned image."""
    kind = "Deployment" if name in DEPLOYMENTS else "Job"
    spec = pod_spec(find(render(overlay), kind, name))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_deployment_has_probes_and_a_disruption_budget(overlay: str, name: str) -> None:
    """Readiness and liveness probes on a named port, and a PodDisruptionBudget selecting its pods."""
    docs = render(overlay)
    deployment = find(docs, "Deployment", name)
    (container,) = pod_spec(deployment)["containers"]
    ports = {port["name"] for port in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports, f"{name}: {probe}"
    budget = find(docs, "PodDisruptionBudget", name)
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_workers_scale_with_an_hpa() -> None:
    hpa: dict[str, Any] = find(render("local"), "HorizontalPodAutoscaler", "cx-worker")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cx-worker"}
    assert hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_given(overlay: str) -> None:
    """No Secret resource is rendered and no secret-looking variable has a literal value (only secretKeyRef)."""
    docs = render(overlay)
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            for var in pod_spec(doc)["containers"][0].get("env", []):
                if any(word in var["name"] for word in ("DATABASE_URL", "SECRET", "TOKENS", "API_KEY")):
                    assert "secretKeyRef" in var["valueFrom"], f"{doc['metadata']['name']}: {var['name']}"
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc["data"] if any(w in k for w in ("DATABASE_URL", "SECRET", "TOKENS", "API_KEY"))]


def test_the_overlays_point_at_their_temporal() -> None:
    """local: the in-cluster frontend; temporal-cloud: the namespace endpoint, TLS, the API key by reference;
    temporal-cloud-mtls: the client certificate and key mounted read-only from a secret."""
    local = find(render("local"), "ConfigMap", find(render("local"), "Deployment", "cx-worker")["spec"]["template"]
                 ["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"])  # fmt: skip
    assert local["data"]["TEMPORAL_ADDRESS"].endswith(".svc.cluster.local:7233")
    for overlay in ("temporal-cloud", "temporal-cloud-mtls"):
        docs = render(overlay)
        config = next(doc for doc in docs if doc["kind"] == "ConfigMap")
        assert config["data"]["TEMPORAL_ADDRESS"].endswith(".tmprl.cloud:7233")
        assert config["data"]["TEMPORAL_TLS"] == "true"
    cloud = render("temporal-cloud")
    for kind, name in [("Deployment", "cx-worker"), ("Deployment", "cx-api"), ("Job", "cx-temporal-setup")]:
        env = {var["name"]: var for var in pod_spec(find(cloud, kind, name))["containers"][0]["env"]}
        assert env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "cx-temporal-cloud"
    mtls = render("temporal-cloud-mtls")
    for kind, name in [("Deployment", "cx-worker"), ("Deployment", "cx-api"), ("Job", "cx-temporal-setup")]:
        spec = pod_spec(find(mtls, kind, name))
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "temporal-tls")
        assert mount == {"name": "temporal-tls", "mountPath": "/etc/temporal-tls", "readOnly": True}
        env = {var["name"]: var.get("value") for var in spec["containers"][0]["env"]}
        assert env["TEMPORAL_TLS_CLIENT_CERT_PATH"] == "/etc/temporal-tls/tls.crt"
    # A process that never talks to Temporal gets neither the key nor a path to a file it does not have.
    for overlay in ("temporal-cloud", "temporal-cloud-mtls"):
        for kind, name in [("Deployment", "cx-dispatcher"), ("Job", "cx-migrate")]:
            names = {var["name"] for var in pod_spec(find(render(overlay), kind, name))["containers"][0].get("env", [])}
            assert not {n for n in names if n.startswith("TEMPORAL_")}, f"{overlay} {name}: {names}"
