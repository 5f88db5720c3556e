"""The contract from outside: one exchange started and driven to PAID with the official `temporal` CLI.

Nothing here goes through our Python client or pydantic: the CLI sends plain JSON, exactly as the
contract (docs/contract.md, schemas/json/) tells another team's service to do, encrypted and decrypted
through the API's codec server (`--codec-endpoint`) as the contract's payload encryption requires. Bad
input sent the same way is refused with the contract's typed, non-retryable failures.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from temporalio.testing import WorkflowEnvironment

from clients.client import ExchangeClient
from rules.calendar import working_days
from tests.codec_server import CodecEndpoint
from tests.factories import application
from tests.waiting import eventually
from tests.workflows.conftest import REVIEWERS, add_review_panel, panel_member, review, uploaded_evidence
from workers.devstack import TEMPORAL_CLI

CLI_TIMEOUT_S = 30
WAIT_S = 30


class Cli:
    """The `temporal` CLI against the session's dev server."""

    def __init__(self, env: WorkflowEnvironment, task_queue: str, codec: CodecEndpoint) -> None:
        self._address = env.client.service_client.config.target_host
        self.task_queue = task_queue
        self._codec = codec.cli_args()

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Payloads are encrypted (issue 16): the CLI encodes and decodes them through the API's codec server.
        return subprocess.run(
            [str(TEMPORAL_CLI), *args, "--address", self._address, "--namespace", "default", *self._codec],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, f"temporal {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def update(self, workflow_id: str, name: str, payload: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self(
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--input",
            json.dumps(payload),
        )

    def status(self, workflow_id: str) -> dict[str, Any]:
        out = self.ok("workflow", "query", "--workflow-id", workflow_id, "--name", "status", "--output", "json")
        answer: dict[str, Any] = json.loads(out)["queryResult"][0]
        return answer

    def run_failure(self, workflow_id: str) -> dict[str, Any]:
        """The failure that closed the run, from its history (what any SDK's caller receives)."""
        events = json.loads(self.ok("workflow", "show", "--workflow-id", workflow_id, "--output", "json"))["events"]
        closing = events[-1]
        assert closing["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED", closing
        failure: dict[str, Any] = closing["workflowExecutionFailedEventAttributes"]["failure"]
        return failure

    async def until(self, workflow_id: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Query `status` with the CLI until `check` holds (real time, bounded by WAIT_S)."""
        return await eventually(
            lambda: asyncio.to_thread(self.status, workflow_id), check, f"{workflow_id}: {what}", WAIT_S, poll_s=0.2
        )

    async def until_stage(self, workflow_id: str, stage: str) -> dict[str, Any]:
        return await self.until(workflow_id, lambda s: s["stage"] == stage, f"reached {stage}")


def stay_that_ended_weeks_ago(country: str) -> tuple[date, date]:
    """A Monday-to-Friday stay with 5 working days that ended about three weeks ago (the demo's way, ADR 0004)."""
    monday = datetime.now(UTC).date() - timedelta(days=28)
    monday -= timedelta(days=monday.weekday())
    while working_days(monday, monday + timedelta(days=4), country) < 5:
        monday -= timedelta(days=7)
    return monday, monday + timedelta(days=4)


async def test_an_exchange_is_driven_to_paid_with_the_temporal_cli(
    dev_server_env: WorkflowEnvironment,
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    funded_partnership: Any,
    codec_endpoint: CodecEndpoint,
) -> None:
    """Start, review, agree, report, validate and confirm payment with `temporal workflow ...` and plain JSON;
    a bad start and a bad update sent the same way come back as typed, non-retryable failures."""
    cli = Cli(dev_server_env, dev_client.task_queue, codec_endpoint)
    partnership = await funded_partnership(500_000)
    await add_review_panel(pg_pool, partnership)
    start, end = stay_that_ended_weeks_ago("FR")
    submitted_at = datetime.combine(start - timedelta(days=35), time(9, 30), tzinfo=UTC)
    app = application(
        visitor_partnership_id=partnership,
        host_partnership_id=partnership,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        submitted_at=submitted_at.isoformat(),
    ).model_dump(mode="json", exclude_none=True)
    workflow_id = f"exchange:{app['application_id']}"
    start_args = ("--type", "Exchange", "--task-queue", cli.task_queue, "--workflow-id")

    # A start without a host: the run fails at once with InvalidInput naming the field (no task-failure loop).
    bad = {k: v for k, v in app.items() if k != "host"} | {"application_id": app["application_id"] + "-bad"}
    refused = await asyncio.to_thread(
        cli, "workflow", "execute", *start_args, f"exchange:{bad['application_id']}", "--input", json.dumps(bad)
    )
    assert refused.returncode != 0
    assert "host: Field required" in refused.stdout
    failure = await asyncio.to_thread(cli.run_failure, f"exchange:{bad['application_id']}")
    assert failure["applicationFailureInfo"] == {"type": "InvalidInput", "nonRetryable": True}

    await asyncio.to_thread(cli.ok, "workflow", "start", *start_args, workflow_id, "--input", json.dumps(app))
    status = await cli.until(
        workflow_id,
        lambda s: bool(s["review"]) and sum(a["status"] == "open" for a in s["review"]["assignments"] or ()) == 2,
        "had two reviewers assigned",
    )

    wrong_type = await asyncio.to_thread(
        cli.update,
        workflow_id,
        "extend_review_deadline",
        {"actor_id": "officer", "working_days": "5", "justification": "the panel is away this week"},
    )
    assert wrong_type.returncode != 0
    assert "working_days: Input should be a valid integer" in wrong_type.stderr
    assert "(type: InvalidInput, retryable: false)" in wrong_type.stderr

    assigned = [a["reviewer_id"] for a in status["review"]["assignments"] if a["status"] == "open"]
    assert set(assigned) <= {panel_member(partnership, name) for name in REVIEWERS}
    for reviewer_id in assigned:
        await asyncio.to_thread(cli.update, workflow_id, "submit_review", review(reviewer_id))
    await cli.until_stage(workflow_id, "AGREEMENT")

    parties = (await asyncio.to_thread(cli.status, workflow_id))["parties"]
    for party in ("HO", "HOP", "VO", "VOP"):
        signature = {"actor_id": f"signer-{party}", "party": party, "on_behalf_of": parties[party]}
        signed = await asyncio.to_thread(cli.update, workflow_id, "sign_commitment", signature)
        assert signed.returncode == 0, signed.stderr
    for side, party in (("host", "HO"), ("visitor", "VO")):
        match = {"actor_id": f"{side}-contact", "side": side, "on_behalf_of": parties[party]}
        done = await asyncio.to_thread(cli.update, workflow_id, "confirm_match", match)
        assert done.returncode == 0, done.stderr
    await cli.until_stage(workflow_id, "REPORTING")  # the stay is over: the travel timers were already due

    evidence = await uploaded_evidence(pg_pool, app["application_id"])  # files go through `cx evidence add`
    report = {"actor_id": "visitor-vera", "summary": "Met the clean-room team.", "evidence": evidence}
    submitted = await asyncio.to_thread(cli.update, workflow_id, "submit_report", report)
    assert submitted.returncode == 0, submitted.stderr
    accepted = await asyncio.to_thread(
        cli.update,
        workflow_id,
        "validate_report",
        {"actor_id": "vop-victor", "decision": "accept", "on_behalf_of": parties["VOP"]},
    )
    assert accepted.returncode == 0, accepted.stderr
    status = await cli.until(workflow_id, lambda s: bool(s["payment_order_id"]), "ordered its payment")

    confirmation = {
        "payment_order_id": status["payment_order_id"],
        "amount_cents": status["paid_cents"],
        "payment_reference": "SEPA-CLI-1",
        "confirmed_by": "finance-fia",
    }
    await asyncio.to_thread(
        cli.ok, "workflow", "signal", "--workflow-id", workflow_id, "--name", "confirm_payment",
        "--input", json.dumps(confirmation),
    )  # fmt: skip
    result = await asyncio.to_thread(cli.ok, "workflow", "result", "--workflow-id", workflow_id, "--output", "json")
    closed = json.loads(result)
    assert closed["status"] == "COMPLETED"
    [outcome] = closed["closeEvent"]["workflowExecutionCompletedEventAttributes"]["result"]
    assert (outcome["stage"], outcome["paid_cents"]) == ("PAID", confirmation["amount_cents"])
    assert (
        await pg_pool.fetchval(
            "SELECT payment_reference FROM payment_orders WHERE application_id = $1", app["application_id"]
        )
        == "SEPA-CLI-1"
    )
