"""Named timeouts and retry policies for every activity call (one place to tune them)."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from schemas.errors import ErrorType

# Database writes: short attempts, retried with backoff while Postgres is unreachable, bounded so a
# long outage surfaces as a failed activity (ops alert) instead of retrying forever.
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[e.value for e in ErrorType],
)
DATABASE_START_TO_CLOSE = timedelta(seconds=30)
DATABASE_SCHEDULE_TO_CLOSE = timedelta(hours=2)

# Pure computations (screening, pricing, deadlines): retried a few times, never long.
COMPUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=[e.value for e in ErrorType],
)
COMPUTE_START_TO_CLOSE = timedelta(seconds=30)
LOCAL_START_TO_CLOSE = timedelta(seconds=10)


class ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# Every database activity call spreads these: `execute_activity_method(..., **options.DATABASE)`.
DATABASE = ActivityOptions(
    start_to_close_timeout=DATABASE_START_TO_CLOSE,
    schedule_to_close_timeout=DATABASE_SCHEDULE_TO_CLOSE,
    retry_policy=DATABASE_RETRY,
)


class HeartbeatedActivityOptions(ActivityOptions):
    heartbeat_timeout: timedelta


# Reconciliation's comparisons page through every exchange: long, but each page heartbeats, so a worker that
# dies is noticed within the heartbeat timeout and the retry resumes at the last page (activities/reconcile.py).
RECONCILE = HeartbeatedActivityOptions(
    start_to_close_timeout=timedelta(hours=2),
    schedule_to_close_timeout=timedelta(hours=6),
    retry_policy=DATABASE_RETRY,
    heartbeat_timeout=timedelta(minutes=2),
)
