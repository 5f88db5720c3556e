"""Worker Versioning: each worker build runs under a deployment name and a build id, and one is current.

A new build is started beside the old one; once its workers poll, `cx temporal promote` makes it the
deployment's current version, and every exchange moves to it at its next workflow task (auto-upgrade).
That is safe because a change to workflow logic is guarded by `workflow.patched` and proven by replay
(docs/adr/0013-v1-baseline-and-workflow-changes.md); pinning would keep every build alive for an
exchange's whole life (months). The old build's workers can stop once `describe` shows no exchange
still on it (`temporal worker deployment describe-version`), which is at once with auto-upgrade.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

IDENTITY = "cx temporal promote"


class PromotionError(Exception):
    """The build could not be made current (no worker of it polled in time, or the server refused)."""


@dataclass(frozen=True)
class Deployment:
    """A worker build: the deployment (the engine) and this build's id, e.g. a git commit or release tag."""

    name: str
    build_id: str

    def config(self) -> WorkerDeploymentConfig:
        """What a Worker is given: versioned, exchanges following the current build (auto-upgrade)."""
        return WorkerDeploymentConfig(
            version=WorkerDeploymentVersion(deployment_name=self.name, build_id=self.build_id),
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
        )


async def current_build_id(client: Client, namespace: str, deployment_name: str) -> str | None:
    """The deployment's current build id, or None when it has none yet (or does not exist)."""
    try:
        described = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=namespace, deployment_name=deployment_name)
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    current = described.worker_deployment_info.routing_config.current_deployment_version
    return current.build_id or None


async def promote(
    client: Client, namespace: str, deployment: Deployment, *, timeout_s: float = 60.0, retry_s: float = 1.0
) -> str | None:
    """Make `deployment.build_id` current; returns the build id that was current before (None if none).

    Waits (up to `timeout_s`) for a worker of the build to have polled: the server refuses a version
    it has not seen poll, and making current a build that no worker runs would stall every exchange.
    """
    previous = await current_build_id(client, namespace, deployment.name)
    if previous == deployment.build_id:
        return previous
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + timeout_s
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=namespace,
                    deployment_name=deployment.name,
                    build_id=deployment.build_id,
                    identity=IDENTITY,
                )
            )
            return previous
        except RPCError as error:
            # NOT_FOUND / FAILED_PRECONDITION: the deployment or version is not known yet (no poller so far).
            waiting = error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not waiting or loop.time() >= give_up_at:
                raise PromotionError(
                    f"build {deployment.build_id!r} of deployment {deployment.name!r} could not be made current: "
                    f"{error.message}"
                    + (" (no worker of this build polled in time: start it first)" if waiting else "")
                ) from error
        await asyncio.sleep(retry_s)
