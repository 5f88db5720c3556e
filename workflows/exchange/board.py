"""REVIEW: the review board's rules, as pure deterministic code the review stage drives.

Kept apart from the stage (review.py) so the quorum and validation rules read (and test) on their own:
who is assigned, who has answered, whether a quorum of k reviews from two organisations (when the
assignment spans two) has formed, and what it decided (a veto rejects; otherwise the mean of every
criterion score must reach the policy's threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.exchange import Recommendation, SubmitReviewInput
    from schemas.policy import ReviewPolicy
    from schemas.review import Assignment, AssignmentStatus, ReviewerState


@dataclass(frozen=True)
class ReviewDecision:
    approved: bool
    reason: str
    actor_id: str


@dataclass
class ReviewBoard:
    """Assignments and reviews of one application; mutated only by the workflow."""

    rules: ReviewPolicy
    organisations: dict[str, str] = field(default_factory=dict)  # reviewer id -> organisation id
    statuses: dict[str, AssignmentStatus] = field(default_factory=dict)
    reviews: dict[str, SubmitReviewInput] = field(default_factory=dict)
    ever_assigned: set[str] = field(default_factory=set)

    def assign(self, assignments: tuple[Assignment, ...]) -> None:
        for assignment in assignments:
            self.organisations[assignment.reviewer_id] = assignment.organisation_id
            self.statuses[assignment.reviewer_id] = AssignmentStatus.OPEN
            self.ever_assigned.add(assignment.reviewer_id)

    def active(self) -> list[str]:
        """Reviewers still on the board: open or answered (not recused, not replaced)."""
        return [r for r, s in self.statuses.items() if s in (AssignmentStatus.OPEN, AssignmentStatus.SUBMITTED)]

    def silent(self) -> list[str]:
        return [r for r, s in self.statuses.items() if s is AssignmentStatus.OPEN]

    def vacancies(self) -> int:
        return max(0, self.rules.reviewers_per_application - len(self.active()))

    def is_assigned(self, reviewer_id: str) -> bool:
        return reviewer_id in self.active()

    def submit(self, review: SubmitReviewInput) -> None:
        self.reviews[review.actor_id] = review
        self.statuses[review.actor_id] = AssignmentStatus.SUBMITTED

    def remove(self, reviewer_id: str, status: AssignmentStatus) -> None:
        self.statuses[reviewer_id] = status
        self.reviews.pop(reviewer_id, None)

    def invalidate_reviews(self) -> list[str]:
        """Changes were requested: every review given so far no longer counts; reviewers answer again."""
        answered = list(self.reviews)
        for reviewer_id in answered:
            self.statuses[reviewer_id] = AssignmentStatus.OPEN
        self.reviews.clear()
        return answered

    def score_problem(self, review: SubmitReviewInput) -> str | None:
        """Why a review's scores do not fit the policy's rubric, or None."""
        expected = set(self.rules.criteria)
        if set(review.scores) != expected:
            missing = sorted(expected - set(review.scores))
            extra = sorted(set(review.scores) - expected)
            return f"scores: give exactly the criteria {sorted(expected)} (missing {missing}, unknown {extra})"
        out_of_range = {c: s for c, s in review.scores.items() if not self.rules.score_min <= s <= self.rules.score_max}
        if out_of_range:
            return f"scores: {out_of_range} outside {self.rules.score_min}..{self.rules.score_max}"
        return None

    def decision(self) -> ReviewDecision | None:
        """The board's decision once a quorum has formed, else None."""
        reviews = [self.reviews[r] for r in self.active() if r in self.reviews]
        if len(reviews) < self.rules.quorum:
            return None
        active_organisations = {self.organisations[r] for r in self.active()}
        reviewing_organisations = {self.organisations[r.actor_id] for r in reviews}
        if len(active_organisations) >= 2 and len(reviewing_organisations) < 2:
            return None  # two organisations are possible: wait for the other one
        vetoes = [r for r in reviews if r.recommendation is Recommendation.REJECT]
        if vetoes:
            veto = vetoes[0]
            return ReviewDecision(False, f"vetoed by {veto.actor_id}: {veto.comment or 'no comment'}", veto.actor_id)
        scores = [score for r in reviews for score in r.scores.values()]
        mean = sum(scores) / len(scores)
        if mean < self.rules.approval_mean_score:
            return ReviewDecision(
                False, f"mean score {mean:.2f} below the threshold {self.rules.approval_mean_score:g}", "system"
            )
        return ReviewDecision(True, f"approved by {len(reviews)} reviewers, mean score {mean:.2f}", "system")

    def states(self) -> tuple[ReviewerState, ...]:
        return tuple(
            ReviewerState(reviewer_id=r, organisation_id=self.organisations[r], status=s)
            for r, s in sorted(self.statuses.items())
        )
