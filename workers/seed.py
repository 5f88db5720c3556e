"""Seed data: the 15 European Cluster Partnerships and their budgets (7,000,000 EUR in all).

Nine names are public (DOMAIN.md); the other six are invented and marked "(fictional)". BIGINN's
budget is the published 496,261 EUR; the rest of the 7 M EUR is shared evenly, the odd cents going to
the first partnership, so the total is exact. Seeding is idempotent (ledger keys `<partnership>:allocate:1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ledger.review import add_reviewer
from ledger.store import LedgerStore
from schemas.review import Reviewer, ReviewerRole

PROGRAMME_TOTAL_CENTS = 7_000_000_00
_BIGINN_CENTS = 496_261_00


@dataclass(frozen=True)
class PartnershipSeed:
    partnership_id: str
    name: str
    budget_cents: int


def _partnerships() -> tuple[PartnershipSeed, ...]:
    names = [
        ("agrifoodx", "AgriFoodX5.0"),
        ("greentech", "GreenTech 2.0"),
        ("hempclub", "HempCluB"),
        ("hitechtex", "Hi-Tech-TEX"),
        ("photonics4i", "Photonics4Industry"),
        ("biginn", "BIGINN"),
        ("medicnest", "Medic Nest"),
        ("ce4big", "CE4BIG"),
        ("epix", "EPIX"),
        ("bluecoast", "BlueCoast Maritime (fictional)"),
        ("alpinewood", "AlpineWood Bio (fictional)"),
        ("danubemob", "Danube Mobility (fictional)"),
        ("balticai", "Baltic AI Forge (fictional)"),
        ("aegeansun", "Aegean Solar (fictional)"),
        ("carpathia", "Carpathia Textiles (fictional)"),
    ]
    others = [n for n in names if n[0] != "biginn"]
    share, odd_cents = divmod(PROGRAMME_TOTAL_CENTS - _BIGINN_CENTS, len(others))
    seeds = []
    for index, (partnership_id, name) in enumerate(names):
        budget = _BIGINN_CENTS if partnership_id == "biginn" else share + (odd_cents if index == 0 else 0)
        seeds.append(PartnershipSeed(partnership_id, name, budget))
    assert sum(s.budget_cents for s in seeds) == PROGRAMME_TOTAL_CENTS
    return tuple(seeds)


PARTNERSHIPS = _partnerships()


def review_panel(partnership: PartnershipSeed) -> list[Reviewer]:
    """Three reviewers from three (fictional) member organisations and one programme officer."""
    panel = [
        Reviewer(
            reviewer_id=f"{partnership.partnership_id}-reviewer-{n}",
            name=f"{partnership.name} reviewer {n}",
            organisation_id=f"org-{partnership.partnership_id}-member-{n}",
            country="BE",
            partnership_id=partnership.partnership_id,
            roles=frozenset({ReviewerRole.REVIEWER}),
        )
        for n in (1, 2, 3)
    ]
    panel.append(
        Reviewer(
            reviewer_id=f"{partnership.partnership_id}-officer",
            name=f"{partnership.name} programme officer",
            organisation_id=f"org-{partnership.partnership_id}-office",
            country="BE",
            partnership_id=partnership.partnership_id,
            roles=frozenset({ReviewerRole.PROGRAMME_OFFICER}),
        )
    )
    return panel


async def seed_partnerships(
    pool: asyncpg.Pool, store: LedgerStore, partnerships: Sequence[PartnershipSeed] = PARTNERSHIPS
) -> None:
    """Create the partnerships, their review panels and budgets; running it again changes nothing. The programme
    simulation passes its behaviour model's partnerships (docs/adr/0027-programme-simulation.md)."""
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO partnerships (partnership_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(p.partnership_id, p.name) for p in partnerships],
        )
        for p in partnerships:
            for reviewer in review_panel(p):
                await add_reviewer(conn, reviewer)
    for p in partnerships:
        await store.allocate(
            idempotency_key=f"{p.partnership_id}:allocate:1",
            partnership_id=p.partnership_id,
            amount_cents=p.budget_cents,
        )
