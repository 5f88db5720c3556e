"""The bare baseline's worker process (started by bench/lifecycle.py, not by people).

    .venv/bin/python -m bench.bare_worker --address 127.0.0.1:7233 --task-queue bench-bare [--metrics-address H:P]

Runs `BareWorkflow` and the no-op activity with the SDK's default worker options, the same data
converter and the same kind of runtime as `cx worker`, until SIGTERM or SIGINT. A process of its own,
as the exchange worker is, so that each one's CPU time and memory are read apart.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker

from bench.bare import BareWorkflow, noop
from schemas.converter import DATA_CONVERTER
from workers.metrics import runtime_with_metrics


async def serve(address: str, namespace: str, task_queue: str, metrics_address: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # As `cx worker` with CX_METRICS_ADDRESS: the SDK's Prometheus metrics (workflow cache, task counts).
    runtime = runtime_with_metrics(metrics_address) if metrics_address else Runtime(telemetry=TelemetryConfig())
    client = await Client.connect(address, namespace=namespace, data_converter=DATA_CONVERTER, runtime=runtime)
    async with Worker(client, task_queue=task_queue, workflows=[BareWorkflow], activities=[noop]):
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--address", required=True, help="Temporal frontend host:port")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--metrics-address", help="serve the SDK's Prometheus metrics on host:port")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.namespace, args.task_queue, args.metrics_address))


if __name__ == "__main__":
    main()
