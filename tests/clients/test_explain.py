"""`cx explain` against a real audit trail: review decisions with who, what and why, and R7 refusals with the
evidence they were decided on (the other application, when it claimed the visit, its stage)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.screening import VisitActivities, claim, release
from rules.screening import visit_failures
from schemas.exchange import ApplicationInput
from schemas.screening import CheckVisitInput
from schemas.stages import Stage
from tests.clients.test_cli import cx
from tests.factories import application, project

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _application(organisation: str) -> ApplicationInput:
    app = application()
    return app.model_copy(update={"visitor": app.visitor.model_copy(update={"organisation_id": organisation})})


async def _record(
    pool: asyncpg.Pool,
    app: ApplicationInput,
    events: list[tuple[str, Stage, str, str, dict[str, Any]]],
) -> None:
    """Project (event, stage, actor, reason, details) rows in order, as the workflow's `_record` does."""
    for sequence, (event, stage, actor_id, reason, details) in enumerate(events, start=1):
        await project(
            pool,
            app,
            stage,
            event=event,
            sequence=sequence,
            actor_id=actor_id,
            reason=reason,
            details=details,
            at=T0 + timedelta(minutes=sequence),
            policy_version="2022.1",
        )


async def _claimed(pool: asyncpg.Pool, organisation: str, stage: Stage) -> str:
    """Another application of `organisation` that claimed its visit and is now at `stage`."""
    other = _application(organisation)
    async with pool.acquire() as conn:
        await claim(conn, organisation, other.application_id)
    await _record(pool, other, [("stage_entered", stage, "system", f"at {stage}", {})])
    return other.application_id


async def test_explain_shows_every_review_decision_with_reviewer_recommendation_and_scores(
    pg_pool: asyncpg.Pool, database_url: str
) -> None:
    """Reviews, a request for changes and its answer, an override, the board's decision and a reopening all
    appear in order with who made them, their reasons, recommendations and scores; comments print as written."""
    app = _application(f"org-{uuid.uuid4().hex[:8]}")
    scores = {"relevance": 4, "agenda_quality": 5, "expected_impact": 3}
    await _record(
        pg_pool,
        app,
        [
            ("stage_entered", Stage.REVIEW, "system", "", {}),
            (
                "review_submitted",
                Stage.REVIEW,
                "rev-a",
                "Clear goals; agenda [draft] is thin",
                {"recommendation": "approve", "scores": scores},
            ),
            ("changes_requested", Stage.REVIEW, "rev-b", "Add a day-by-day agenda", {"invalidated_reviews": ["rev-a"]}),
            ("application_amended", Stage.REVIEW, "applicant-1", "answer to the request for changes", {}),
            ("review_submitted", Stage.REVIEW, "rev-b", "Too vague", {"recommendation": "reject", "scores": {}}),
            ("review_decided", Stage.REVIEW, "rev-b", "vetoed by rev-b", {"approved": False}),
            ("stage_entered", Stage.REJECTED, "rev-b", "vetoed by rev-b", {}),
            ("review_reopened", Stage.REJECTED, "officer-1", "The veto misread the agenda", {}),
            (
                "review_overridden",
                Stage.REVIEW,
                "officer-2",
                "Agenda is complete after amendment",
                {"decision": "approve"},
            ),
            (
                "review_decided",
                Stage.REVIEW,
                "officer-2",
                "officer override: Agenda is complete after amendment",
                {"approved": True},
            ),
        ],
    )
    result = cx("explain", app.application_id, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected_in_order = [
        "review_submitted at 2026-03-02T09:02:00+00:00 by rev-a",
        "  Clear goals; agenda [draft] is thin",
        "  recommendation: approve",
        "  scores: relevance 4, agenda_quality 5, expected_impact 3",
        "changes_requested at",
        "  Add a day-by-day agenda",
        "  invalidated_reviews: rev-a",
        "application_amended at",
        "review_submitted at 2026-03-02T09:05:00+00:00 by rev-b",
        "  recommendation: reject",
        "  scores: none",
        "review_decided at",
        "  decision: rejected",
        "review_reopened at 2026-03-02T09:08:00+00:00 by officer-1",
        "  The veto misread the agenda",
        "review_overridden at 2026-03-02T09:09:00+00:00 by officer-2",
        "  decision: approve",
        "review_decided at 2026-03-02T09:10:00+00:00 by officer-2",
        "  decision: approved",
    ]
    position = 0
    for text in expected_in_order:
        found = out.find(text, position)
        assert found >= 0, f"{text!r} not found after position {position} in:\n{out}"
        position = found + len(text)
    assert "R7 evidence" not in out
    decisions = json.loads(cx("explain", app.application_id, "--json", env={"DATABASE_URL": database_url}).stdout)
    submitted = [d for d in decisions["decisions"] if d["event"] == "review_submitted"]
    assert [(d["actor_id"], d["details"]["recommendation"]) for d in submitted] == [
        ("rev-a", "approve"),
        ("rev-b", "reject"),
    ]
    assert submitted[0]["details"]["scores"] == scores


async def test_explain_shows_the_early_r7_refusal_with_its_evidence(pg_pool: asyncpg.Pool, database_url: str) -> None:
    """Refused at SCREENING because a paid exchange used the visit: the failure names it, the recorded check
    says when it was claimed and its stage, and the claims on record back it up."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    holder = await _claimed(pg_pool, organisation, Stage.PAID)
    app = _application(organisation)
    check = await ActivityEnvironment().run(
        VisitActivities(pg_pool).check_visit,
        CheckVisitInput(organisation_id=organisation, application_id=app.application_id),
    )
    failures = visit_failures(app.visitor, check)
    reason = "; ".join(f"{f.rule} ({f.field}): {f.message}" for f in failures)
    await _record(
        pg_pool,
        app,
        [
            ("stage_entered", Stage.SUBMITTED, "officer-anna", "application received", {}),
            (
                "screening_decided",
                Stage.SCREENING,
                "system",
                "ineligible",
                {
                    "failures": [f.model_dump() for f in failures],
                    "input_digest": "sha256:abc",
                    "working_days": 5,
                    "distance_km": 1220.6,
                    "r7": check.model_dump(mode="json"),
                },
            ),
            ("stage_entered", Stage.INELIGIBLE, "system", reason, {}),
        ],
    )
    result = cx("explain", app.application_id, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert check.claimed_at is not None
    claimed = check.claimed_at.isoformat()
    out = result.stdout
    assert (
        f"  R7 (visitor.organisation_id): Krakow Photonics Cluster has already used its one visit in the scheme: "
        f"application {holder} (claimed on {check.claimed_at.date()}) was paid. An organisation may visit only once."
    ) in out
    assert (
        f"  R7 check: the visit of {organisation} was used by application {holder}, claimed at {claimed}; "
        "its stage then: PAID" in out
    )
    assert "stage_entered INELIGIBLE at 2026-03-02T09:03:00+00:00 by system" in out
    assert f"R7 evidence: visit claims of {organisation} on record" in out
    assert f"  {holder}: claimed at {claimed}, not released; stage now PAID" in out
    explanation = json.loads(cx("explain", app.application_id, "--json", env={"DATABASE_URL": database_url}).stdout)
    screening = next(d for d in explanation["decisions"] if d["event"] == "screening_decided")
    assert screening["details"]["r7"] == check.model_dump(mode="json")
    assert [c["application_id"] for c in explanation["visit_claims"]] == [holder]


async def test_explain_shows_an_r7_refusal_at_funding_with_the_claims_on_record(
    pg_pool: asyncpg.Pool, database_url: str
) -> None:
    """Refused by the claim at FUNDING: the INELIGIBLE reason names the holder, and the visitor's claims are
    listed, a released one with its reason and the live one with the holder's stage now."""
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    withdrawn = await _claimed(pg_pool, organisation, Stage.WITHDRAWN)
    async with pg_pool.acquire() as conn:
        await release(conn, withdrawn, "WITHDRAWN")
    holder = await _claimed(pg_pool, organisation, Stage.AGREEMENT)
    app = _application(organisation)
    reason = (
        f"R7 (visitor.organisation_id): Krakow Photonics Cluster has already used its one visit in the scheme "
        f"(exchange {holder}); an organisation may visit only once."
    )
    await _record(
        pg_pool,
        app,
        [
            (
                "screening_decided",
                Stage.SCREENING,
                "system",
                "eligible",
                {
                    "failures": [],
                    "r7": {
                        "organisation_id": organisation,
                        "visit": "free",
                        "held_by_application_id": None,
                        "claimed_at": None,
                        "holder_stage": None,
                    },
                },
            ),
            ("stage_entered", Stage.FUNDING, "system", "", {}),
            ("stage_entered", Stage.INELIGIBLE, "system", reason, {}),
        ],
    )
    result = cx("explain", app.application_id, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  R7 check: the visit was free (no other exchange held a claim)" in out
    assert f"  {reason}" in out
    assert f"R7 evidence: visit claims of {organisation} on record" in out
    lines = out[out.index("R7 evidence") :].splitlines()[1:]
    assert lines[0].startswith(f"  {withdrawn}: claimed at ")
    assert "released at " in lines[0]
    assert lines[0].endswith("(WITHDRAWN); stage now WITHDRAWN")
    assert lines[1].startswith(f"  {holder}: claimed at ")
    assert lines[1].endswith("not released; stage now AGREEMENT")
