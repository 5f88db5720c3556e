"""The one composition root: settings -> pool -> ledger store -> activities -> worker.

`cx worker` (and `make run`) call `run_worker`; tests build the same worker with `build_worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.closing import ClosingActivities
from activities.deadlines import working_day_deadline
from activities.funding import FundingActivities, LedgerActivities, WaitlistActivities
from activities.payments import PaymentActivities
from activities.pricing import price_exchange
from activities.projection import ProjectionActivities
from activities.reconcile import ReconcileActivities
from activities.reporting import EvidenceActivities
from activities.review import ReviewActivities
from activities.screening import VisitActivities, screen_application
from activities.submission import SubmissionActivities
from ledger.evidence_store import EvidenceStore
from ledger.pool import keep_session
from ledger.store import LedgerStore
from schemas.policy import Policy
from workers.log_context import ExchangeLogContext
from workers.settings import DEFAULT_ACTIVITY_SLOTS, DEFAULT_CACHED_WORKFLOWS, DEFAULT_WORKER_POOL_SIZE
from workers.versioning import Deployment
from workflows.exchange import ExchangeWorkflow
from workflows.funding import FundsWorkflow
from workflows.reconcile import ReconcileWorkflow

WORKFLOWS = [ExchangeWorkflow, FundsWorkflow, ReconcileWorkflow]
# Our own modules (and what they import) pass through the sandbox instead of being imported again for every
# exchange: they hold no state a workflow could change (models are frozen, functions pure), and a fresh
# import per workflow cost a tenth of the worker's CPU and most of its memory (docs/performance.md).
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "workflows",
        "activities",
        "rules",
        "schemas",
        "ledger",
        "pydantic",
        "pydantic_core",
        "holidays",
        "asyncpg",
        # The tracing interceptor's workflow side (workers/tracing.py) uses the OpenTelemetry API inside the
        # sandbox; a second import of it there would give workflows a context and provider of their own.
        "opentelemetry",
    )
)


@contextlib.asynccontextmanager
async def database_pool(database_url: str, max_size: int = DEFAULT_WORKER_POOL_SIZE) -> AsyncIterator[asyncpg.Pool]:
    """One pool per process (asyncpg's advice), shared by the activities; closed when the block ends."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size, reset=keep_session)
    try:
        yield pool
    finally:
        await pool.close()


# Where payment orders go when nothing else is configured: the local finance stand-in that `make run`
# serves (workers/dev_up.py). Production sets CX_FINANCE_WEBHOOK_URL; `cx worker` requires it.
DEV_FINANCE_WEBHOOK_URL = "http://127.0.0.1:8099/payment-orders"


def _activities(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    finance_webhook_url: str,
    notify_email: str | None,
    payments: PaymentActivities | None,
    projection: ProjectionActivities | None,
    evidence_store: EvidenceStore | None,
    extra_policies: Mapping[str, Policy] | None,
) -> list[Callable[..., Any]]:
    """Every activity the worker runs, bound to its pool, ledger and configuration (build_worker's arguments)."""
    store = LedgerStore(pool)
    ledger = LedgerActivities(store)
    submission = SubmissionActivities(pool, notify_email, extra_policies)
    review = ReviewActivities(pool, notify_email)
    funding = FundingActivities(pool, store, notify_email)
    evidence = EvidenceActivities(pool, notify_email, evidence_store)
    payments = payments or PaymentActivities(pool, store, finance_webhook_url, notify_email)
    closing = ClosingActivities(pool, store, notify_email)
    projection = projection or ProjectionActivities(pool, notify_email)
    visits = VisitActivities(pool)
    waitlist = WaitlistActivities(client, task_queue)
    reconcile = ReconcileActivities(pool, client, task_queue, notify_email)
    return [
        # One unit of work per stage, each with the audit trail in its own transaction.
        submission.admit_application,
        review.assign_reviewers,
        funding.fund_exchange,
        evidence.verify_evidence,
        payments.post_payment,
        closing.close_exchange,
        projection.record_events,
        # Less travelled paths: an amendment screened and priced again, a deadline, the waitlist.
        screen_application,
        price_exchange,
        visits.check_visit,
        working_day_deadline,
        ledger.hold_funds,
        ledger.void_hold,
        ledger.rehold_funds,
        waitlist.join_waitlist,
        waitlist.leave_waitlist,
        waitlist.announce_release,
        # Nightly reconciliation (workflows/reconcile.py): reads and reports, never books.
        reconcile.compare,
        reconcile.report_findings,
    ]


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    *,
    finance_webhook_url: str = DEV_FINANCE_WEBHOOK_URL,
    notify_email: str | None = None,
    payments: PaymentActivities | None = None,
    projection: ProjectionActivities | None = None,
    deployment: Deployment | None = None,
    activity_slots: int = DEFAULT_ACTIVITY_SLOTS,
    cached_workflows: int = DEFAULT_CACHED_WORKFLOWS,
    interceptors: Sequence[Interceptor] = (),
    evidence_store: EvidenceStore | None = None,
    extra_policies: Mapping[str, Policy] | None = None,
) -> Worker:
    """The worker with every workflow and activity; `payments` and `projection` let fault tests swap in a
    stand-in that crashes or refuses, in tests about the workflow's own logic. With a `deployment`, the
    worker runs under Worker Versioning as that build (workers/versioning.py); `activity_slots` and
    `cached_workflows` are the worker's tuning (docs/performance.md, "Sizing"); `evidence_store` is where
    `verify_evidence` reads the uploaded files (CX_EVIDENCE_STORE; without one it compares the records
    only); `extra_policies` are versions known beyond the shipped files (the programme simulation's
    candidate, docs/adr/0027-programme-simulation.md). Every activity's log lines carry its exchange_id
    (workers/log_context.py); `interceptors` adds others. Tracing comes with the client: a client made by
    workers/tracing.py `traced_client` gives its worker the same interceptor (the SDK prepends a client's
    worker interceptors), so it is not passed here too, or every span would be made twice."""
    activities = _activities(
        client,
        pool,
        task_queue,
        finance_webhook_url,
        notify_email,
        payments,
        projection,
        evidence_store,
        extra_policies,
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        workflow_runner=SANDBOX,
        deployment_config=deployment.config() if deployment else None,
        max_concurrent_activities=activity_slots,
        max_cached_workflows=cached_workflows,
        interceptors=[ExchangeLogContext(), *interceptors],
    )


async def run_worker(
    client: Client,
    database_url: str,
    task_queue: str,
    stop: asyncio.Event,
    *,
    finance_webhook_url: str = DEV_FINANCE_WEBHOOK_URL,
    notify_email: str | None = None,
    evidence_store: EvidenceStore | None = None,
) -> None:
    """Run the worker until `stop` is set, then drain in-flight tasks and close the pool."""
    async with database_pool(database_url) as pool:
        worker = build_worker(
            client,
            pool,
            task_queue,
            finance_webhook_url=finance_webhook_url,
            notify_email=notify_email,
            evidence_store=evidence_store,
        )
        async with worker:
            await stop.wait()
