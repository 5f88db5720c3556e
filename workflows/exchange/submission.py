"""SUBMITTED and SCREENING: the start's checks, the admission (one activity), and screening again after an
amendment.

Before anything is touched (docs/adr/0011-trust-at-the-edges.md): the start input was decoded strictly
(schemas/converter.py; a bad one fails the run with InvalidInput), the workflow id must be
`exchange:<application_id>` and `submitted_at` not after the start. Then `admit_application` resolves the
policy (an unknown version: InvalidInput), claims the application id for this run (another run's claim:
DuplicateApplication, nothing changed), screens R1-R7 and, eligible, books the reviewers, in one
transaction (activities/submission.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.screening import VisitActivities, screen_application
    from activities.submission import SubmissionActivities
    from rules.screening import visit_failures
    from schemas.errors import Refusal, refused
    from schemas.events import EventName
    from schemas.exchange import RuleFailure
    from schemas.ids import exchange_workflow_id
    from schemas.screening import CheckVisitInput, ScreenApplicationInput
    from schemas.stages import Stage
    from schemas.submission import AdmitApplicationInput, AdmitApplicationResult
    from workflows import options
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange

# How far a submission instant may run ahead of the server's start time (clocks of other machines).
SUBMITTED_AT_CLOCK_SKEW = timedelta(minutes=5)


def check_start(ex: Exchange) -> None:
    """What the input's schema cannot say: the run is addressed as the contract says, and not from the future."""
    info = workflow.info()
    expected = exchange_workflow_id(ex.application_id)
    if info.workflow_id != expected:
        raise refused(
            Refusal.INVALID_INPUT,
            f"workflow id: must be {expected!r} (exchange:<application_id>), not {info.workflow_id!r}",
        )
    submitted_at = ex.app.submitted_at
    if submitted_at is not None and submitted_at > info.start_time + SUBMITTED_AT_CLOCK_SKEW:
        raise refused(
            Refusal.INVALID_INPUT,
            f"submitted_at: {submitted_at.isoformat()} is in the future (the exchange started at "
            f"{info.start_time.isoformat()})",
        )


async def admit(ex: Exchange) -> AdmitApplicationResult:
    """SUBMITTED, SCREENING and, eligible, REVIEW with its first reviewers: one activity, mirrored here."""
    check_start(ex)
    info = workflow.info()
    ex.entering = Stage.REVIEW
    try:
        admitted = await workflow.execute_activity_method(
            SubmissionActivities.admit_application,
            AdmitApplicationInput(
                application=ex.app,
                workflow_id=info.workflow_id,
                run_id=info.first_execution_run_id,
                started_at=info.start_time,
                now=workflow.now(),
                excluded_reviewer_ids=frozenset({ex.app.submitted_by}),
            ),
            **options.DATABASE,
        )
    except ActivityError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == "invalid_input":
            raise refused(Refusal.INVALID_INPUT, f"policy_version: {cause.message}") from None
        raise
    finally:
        ex.entering = None
    if not admitted.claimed:
        raise refused(
            Refusal.DUPLICATE_APPLICATION,
            f"application_id {ex.application_id!r}: already started an exchange (run {admitted.owner_run_id}, "
            f"{admitted.claimed_at.isoformat()}); each application id starts exactly one exchange, so this run "
            "ends here and changes nothing",
        )
    assert admitted.policy is not None
    assert admitted.screening is not None
    ex.policy_or_none = admitted.policy
    ex.adopt(admitted.events)
    ex.screening_failures = admitted.screening.failures
    _end_if_ineligible(ex.screening_failures)
    ex.raise_if_stopped()
    return admitted


async def screen_again(ex: Exchange, amended_by: str) -> None:
    """An amended application is screened anew (R1-R7 and the lead time), then REVIEW is entered again."""
    ex.enter(Stage.SCREENING, SYSTEM_ACTOR)
    result = await workflow.execute_activity(
        screen_application,
        ScreenApplicationInput(application=ex.app, policy=ex.policy, submitted_at=ex.submitted_at()),
        start_to_close_timeout=options.COMPUTE_START_TO_CLOSE,
        retry_policy=options.COMPUTE_RETRY,
    )
    visit = await workflow.execute_activity_method(
        VisitActivities.check_visit,
        CheckVisitInput(organisation_id=ex.app.visitor.organisation_id, application_id=ex.application_id),
        **options.DATABASE,
    )
    failures = (*result.failures, *visit_failures(ex.app.visitor, visit))
    ex.screening_failures = failures
    ex.record(
        EventName.SCREENING_DECIDED,
        SYSTEM_ACTOR,
        "ineligible" if failures else "eligible",
        {
            "failures": [f.model_dump() for f in failures],
            "input_digest": result.input_digest,
            "working_days": result.working_days,
            "distance_km": result.distance_km,
            "r7": visit.model_dump(mode="json"),
        },
    )
    _end_if_ineligible(failures)
    ex.raise_if_stopped()
    ex.enter(Stage.REVIEW, amended_by, "amended after a request for changes")


def _end_if_ineligible(failures: tuple[RuleFailure, ...]) -> None:
    if failures:
        raise Ended(Stage.INELIGIBLE, "; ".join(f"{f.rule} ({f.field}): {f.message}" for f in failures))
