"""REVIEW: which reviewers to choose for an application (issue 5): spread over organisations, then by load."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """An eligible reviewer for one application, with their current open load."""

    reviewer_id: str
    organisation_id: str
    open_load: int


def choose_reviewers(
    candidates: Sequence[Candidate], count: int, covered_organisation_ids: Iterable[str] = ()
) -> list[Candidate]:
    """Pick up to `count` candidates: as many distinct organisations as possible, then the least loaded.

    Each pick comes from an organisation not yet covered while one remains (so the chosen set spans
    min(count, organisations) of them: quorum needs two organisations, and this is the only way to
    guarantee it), and within that from the least-loaded candidates. `covered_organisation_ids` are
    the organisations of reviewers already on the application (a replacement after a recusal should
    bring a new one). Ties go to the organisation with the smaller total open load, then to the
    reviewer id: without the organisation tie-break, ties always fell to the same organisation and
    left the load of symmetric teams two apart (e.g. three organisations of two, two per application).
    """
    covered = set(covered_organisation_ids)
    organisation_load: dict[str, int] = {}
    for candidate in candidates:
        organisation_load[candidate.organisation_id] = (
            organisation_load.get(candidate.organisation_id, 0) + candidate.open_load
        )
    remaining = list(candidates)
    chosen: list[Candidate] = []
    while remaining and len(chosen) < count:
        new_organisations = [c for c in remaining if c.organisation_id not in covered]
        pick = min(
            new_organisations or remaining,
            key=lambda c: (c.open_load, organisation_load[c.organisation_id], c.reviewer_id),
        )
        chosen.append(pick)
        remaining.remove(pick)
        covered.add(pick.organisation_id)
        organisation_load[pick.organisation_id] += 1
    return chosen
