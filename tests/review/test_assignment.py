"""Reviewer assignment in Postgres: conflicts of interest, availability, load balancing, organisation
spread, idempotent retries, concurrency, and idempotent assignment updates (issue 5)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.projection import ProjectionActivities
from activities.review import ReviewActivities
from ledger.review import add_reviewer
from rules.review import Candidate, choose_reviewers
from schemas.events import AssignmentChange, ProjectionBatch
from schemas.exchange import ApplicationInput
from schemas.review import (
    AssignmentStatus,
    AssignReviewersInput,
    AssignReviewersResult,
    Reviewer,
    ReviewerRole,
)
from tests.factories import application

ON = date(2024, 5, 6)


def application_of(application_id: str) -> ApplicationInput:
    return application().model_copy(update={"application_id": application_id})


DUE = datetime(2024, 5, 20, 17, tzinfo=UTC)
VISITOR, HOST = "visitor-org", "host-org"


class Team:
    """One test's partnership, with ids unique to the test (the session database is shared)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.tag = uuid.uuid4().hex[:8]
        self.partnership_id = f"P-{self.tag}"
        self.activities = ReviewActivities(pool)
        self.env = ActivityEnvironment()

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def org(self, name: str) -> str:
        """Organisation ids are unique per test too, except the visitor's and host's (made so below)."""
        return f"{name}-{self.tag}"

    async def add(
        self,
        name: str,
        organisation: str,
        *,
        roles: tuple[ReviewerRole, ...] = (ReviewerRole.REVIEWER,),
        conflicts: tuple[str, ...] = (),
        unavailable_until: date | None = None,
        partnership_id: str | None = None,
    ) -> str:
        reviewer = Reviewer(
            reviewer_id=self.id(name),
            name=name,
            organisation_id=self.org(organisation),
            country="DE",
            partnership_id=partnership_id or self.partnership_id,
            roles=frozenset(roles),
            conflicts=frozenset(self.org(c) for c in conflicts),
            unavailable_until=unavailable_until,
        )
        async with self.pool.acquire() as conn:
            await add_reviewer(conn, reviewer)
        return reviewer.reviewer_id

    def request(self, application: str, count: int, excluded: tuple[str, ...] = ()) -> AssignReviewersInput:
        return AssignReviewersInput(
            application_id=self.id(application),
            partnership_id=self.partnership_id,
            visitor_organisation_id=self.org(VISITOR),
            host_organisation_id=self.org(HOST),
            excluded_reviewer_ids=frozenset(excluded),
            count=count,
            due_at=DUE,
            on=ON,
        )

    async def assign(self, application: str, count: int, excluded: tuple[str, ...] = ()) -> AssignReviewersResult:
        result: AssignReviewersResult = await self.env.run(
            self.activities.assign_reviewers, self.request(application, count, excluded)
        )
        return result

    async def update(
        self, application: str, reviewer_id: str, status: AssignmentStatus, due_at: datetime | None = None
    ) -> None:
        # Assignment changes travel in the workflow's batches (schemas/events.py), written by record_events.
        batch = ProjectionBatch(
            application=application_of(self.id(application)),
            assignments=(AssignmentChange(reviewer_id=reviewer_id, status=status, due_at=due_at),),
        )
        await self.env.run(ProjectionActivities(self.pool).record_events, batch)

    async def give_load(self, reviewer_id: str, open_assignments: int) -> None:
        """Open assignments on other applications, as an officer's manual assignment would."""
        for i in range(open_assignments):
            await self.update(f"other-{reviewer_id}-{i}", reviewer_id, AssignmentStatus.OPEN, DUE)

    async def rows(self, application: str) -> dict[str, asyncpg.Record]:
        records = await self.pool.fetch(
            "SELECT * FROM review_assignments WHERE application_id = $1", self.id(application)
        )
        return {r["reviewer_id"]: r for r in records}

    async def open_loads(self) -> dict[str, int]:
        records = await self.pool.fetch(
            """SELECT r.reviewer_id, count(a.reviewer_id)::int AS open_load FROM reviewers r
               LEFT JOIN review_assignments a ON a.reviewer_id = r.reviewer_id AND a.status = 'open'
               WHERE r.partnership_id = $1 AND 'reviewer' = ANY (r.roles) GROUP BY r.reviewer_id""",
            self.partnership_id,
        )
        return {r["reviewer_id"]: r["open_load"] for r in records}


def ids(result: AssignReviewersResult) -> set[str]:
    return {a.reviewer_id for a in result.assigned}


async def test_assignment_excludes_every_conflict_of_interest_and_the_unavailable(pg_pool: asyncpg.Pool) -> None:
    """Same organisation as visitor or host, declared conflicts, holidays, excluded ids, officers-only and
    other partnerships are never assigned; someone whose holiday ended the day before is."""
    team = Team(pg_pool)
    await team.add("same-as-visitor", VISITOR)
    await team.add("same-as-host", HOST)
    await team.add("conflict-visitor", "o1", conflicts=(VISITOR,))
    await team.add("conflict-host", "o2", conflicts=(HOST,))
    await team.add("on-holiday", "o3", unavailable_until=ON)  # the last day away is inclusive
    back = await team.add("back-from-holiday", "o4", unavailable_until=ON - timedelta(days=1))
    submitter = await team.add("submitter", "o5")
    await team.add("officer-only", "o6", roles=(ReviewerRole.PROGRAMME_OFFICER,))
    await team.add("elsewhere", "o7", partnership_id=f"other-{team.partnership_id}")
    fine = await team.add("fine", "o8", conflicts=("unrelated",))

    result = await team.assign("app", count=5, excluded=(submitter,))

    assert ids(result) == {back, fine}
    assert result.shortfall == 3
    assert set(await team.rows("app")) == {back, fine}


async def test_assignment_balances_open_load(pg_pool: asyncpg.Pool) -> None:
    """Among reviewers of one organisation, the least loaded are chosen (ties by reviewer id)."""
    team = Team(pg_pool)
    busy, loaded_1, loaded_2, idle = [await team.add(n, "o1") for n in ("busy", "loaded-1", "loaded-2", "idle")]
    await team.give_load(busy, 3)
    await team.give_load(loaded_1, 1)
    await team.give_load(loaded_2, 1)

    result = await team.assign("app", count=2)

    assert ids(result) == {idle, loaded_1}  # loaded-1 and loaded-2 tie on load: the id decides
    assert result.shortfall == 0


async def test_assignment_prefers_distinct_organisations_over_load(pg_pool: asyncpg.Pool) -> None:
    """Two reviewers come from two organisations even when a third idle colleague of the first is available."""
    team = Team(pg_pool)
    a1, a2 = await team.add("a1", "A"), await team.add("a2", "A")
    b1 = await team.add("b1", "B")
    await team.give_load(b1, 3)

    result = await team.assign("app", count=2)
    assert {a.organisation_id for a in result.assigned} == {team.org("A"), team.org("B")}
    assert ids(result) == {a1, b1}

    wide = await team.assign("app-3", count=3)
    assert ids(wide) == {a1, a2, b1}
    assert len({a.organisation_id for a in wide.assigned}) == 2


async def test_retrying_an_assignment_books_nothing_new(pg_pool: asyncpg.Pool) -> None:
    """Running the same assign call again (a lost completion) returns the first answer and writes nothing."""
    team = Team(pg_pool)
    for name, organisation in (("r1", "o1"), ("r2", "o2"), ("r3", "o3")):
        await team.add(name, organisation)

    first = await team.assign("app", count=2)
    rows_after_first = await team.rows("app")
    loads_after_first = await team.open_loads()
    # r3 is now the least loaded: a retry that chose again would pick it.
    again = await team.assign("app", count=2)

    assert again == first
    assert len(first.assigned) == 2
    assert await team.rows("app") == rows_after_first
    assert await team.open_loads() == loads_after_first


async def test_a_replacement_comes_from_another_organisation_and_never_a_recused_reviewer(
    pg_pool: asyncpg.Pool,
) -> None:
    """After a recusal, the replacement brings an organisation not yet on the application; the recused
    reviewer is not picked again even if the caller forgot to exclude them."""
    team = Team(pg_pool)
    a1, a2 = await team.add("a1", "A"), await team.add("a2", "A")
    b1, c1 = await team.add("b1", "B"), await team.add("c1", "C")
    await team.give_load(c1, 2)
    first = await team.assign("app", count=2)
    assert ids(first) == {a1, b1}
    await team.update("app", b1, AssignmentStatus.RECUSED)

    replacement = await team.assign("app", count=1, excluded=(a1,))

    assert ids(replacement) == {c1}  # a2 is idle but from A, already on the application; b1 recused
    assert {r: row["status"] for r, row in (await team.rows("app")).items()} == {
        a1: "open",
        b1: "recused",
        c1: "open",
    }
    assert a2 not in await team.rows("app")


async def test_a_later_round_reopens_closed_assignments(pg_pool: asyncpg.Pool) -> None:
    """When a round has ended (assignments closed, e.g. before an amendment), the same reviewers can be
    assigned again: their rows reopen with the new deadline."""
    team = Team(pg_pool)
    r1, r2 = await team.add("r1", "o1"), await team.add("r2", "o2")
    await team.assign("app", count=2)
    for reviewer in (r1, r2):
        await team.update("app", reviewer, AssignmentStatus.CLOSED)

    second_round = await team.assign("app", count=2)

    assert ids(second_round) == {r1, r2}
    assert {row["status"] for row in (await team.rows("app")).values()} == {"open"}


async def test_too_few_eligible_reports_the_shortfall_and_every_officer(pg_pool: asyncpg.Pool) -> None:
    """With one eligible reviewer for two places, the result says one is missing and names all the
    partnership's officers, sorted, available or not (escalation must never silently wait)."""
    team = Team(pg_pool)
    only = await team.add("only", "o1")
    officer_b = await team.add("officer-b", "o2", roles=(ReviewerRole.PROGRAMME_OFFICER,))
    officer_a = await team.add(
        "officer-a", "o3", roles=(ReviewerRole.PROGRAMME_OFFICER, ReviewerRole.REVIEWER), unavailable_until=ON
    )
    await team.add("other-officer", "o4", roles=(ReviewerRole.PROGRAMME_OFFICER,), partnership_id="elsewhere")

    result = await team.assign("app", count=2)

    assert ids(result) == {only}
    assert result.shortfall == 1
    assert result.officers == tuple(sorted((officer_a, officer_b)))

    nobody = Team(pg_pool)
    empty = await nobody.assign("app", count=3)
    assert empty.assigned == ()
    assert empty.shortfall == 3
    assert empty.officers == ()


async def test_update_assignment_is_idempotent(pg_pool: asyncpg.Pool) -> None:
    """Each status change writes once; a repeat changes nothing (not even updated_at); a missing
    assignment is only ever created by opening it; opening again with a new deadline moves the deadline."""
    team = Team(pg_pool)
    r1 = await team.add("r1", "o1")
    await team.assign("app", count=1)

    await team.update("app", r1, AssignmentStatus.SUBMITTED)
    submitted = (await team.rows("app"))[r1]
    await team.update("app", r1, AssignmentStatus.SUBMITTED)
    assert (await team.rows("app"))[r1] == submitted
    assert submitted["status"] == "submitted"

    await team.update("never-assigned", r1, AssignmentStatus.CLOSED)
    assert await team.rows("never-assigned") == {}

    await team.update("manual", r1, AssignmentStatus.OPEN, DUE)
    opened = (await team.rows("manual"))[r1]
    await team.update("manual", r1, AssignmentStatus.OPEN, DUE)
    assert (await team.rows("manual"))[r1] == opened

    later = DUE + timedelta(days=5)
    await team.update("manual", r1, AssignmentStatus.OPEN, later)  # an officer extends the deadline
    extended = (await team.rows("manual"))[r1]
    assert extended["due_at"] == later
    assert extended["assigned_at"] == opened["assigned_at"]


async def test_update_assignment_refuses_unknown_reviewers_and_openings_without_a_deadline(
    pg_pool: asyncpg.Pool,
) -> None:
    """Opening an assignment for nobody, or without a deadline, fails permanently (no retry can fix it)."""
    team = Team(pg_pool)
    r1 = await team.add("r1", "o1")
    with pytest.raises(ApplicationError) as unknown:
        await team.update("app", team.id("ghost"), AssignmentStatus.OPEN, DUE)
    assert unknown.value.non_retryable
    assert unknown.value.type == "UnknownReviewer"
    with pytest.raises(ApplicationError) as no_deadline:
        await team.update("app", r1, AssignmentStatus.OPEN)
    assert no_deadline.value.non_retryable
    assert no_deadline.value.type == "MissingDeadline"
    assert await team.rows("app") == {}


async def test_concurrent_assignments_keep_a_symmetric_team_balanced(pg_pool: asyncpg.Pool) -> None:
    """Ten applications assigned at the same moment in one partnership (three organisations of two
    reviewers, two per application) leave every open load within one of the others, each application
    reviewed by two organisations."""
    team = Team(pg_pool)
    for organisation in ("A", "B", "C"):
        for i in range(2):
            await team.add(f"{organisation.lower()}{i}", organisation)

    results = await asyncio.gather(*(team.assign(f"app-{i}", count=2) for i in range(10)))

    assert all(len({a.organisation_id for a in r.assigned}) == 2 and r.shortfall == 0 for r in results)
    loads = await team.open_loads()
    assert sum(loads.values()) == 20
    assert max(loads.values()) - min(loads.values()) <= 1, loads


def test_choice_spans_organisations_then_balances_load() -> None:
    """The pure choice: a new organisation first while one remains, least loaded within, ties to the
    less-loaded organisation, then the reviewer id."""
    candidates = [
        Candidate("a1", "A", 0),
        Candidate("a2", "A", 0),
        Candidate("b1", "B", 1),
        Candidate("c1", "C", 0),
        Candidate("c2", "C", 1),
    ]
    assert [c.reviewer_id for c in choose_reviewers(candidates, 2)] == ["a1", "c1"]
    assert [c.reviewer_id for c in choose_reviewers(candidates, 2, covered_organisation_ids={"A"})] == ["c1", "b1"]
    assert [c.reviewer_id for c in choose_reviewers(candidates, 4)] == ["a1", "c1", "b1", "a2"]
    everyone = choose_reviewers(candidates, 9)
    assert len(everyone) == 5
    assert set(everyone) == set(candidates)
