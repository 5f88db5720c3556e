"""Every door of the REST API fuzzed (issue 16, item 4): no 5xx, every answer documented and as its schema says,
and the ledger changed by nothing but accepted writes.

CI sends about 1,000 requests per run (EXAMPLES_PER_OPERATION positive and as many negative cases for each of
the 46 operations); `make fuzz` sends as many as `--fuzz-examples` asks (tests/fuzz_options.py). Each run has a
funded partnership with an exchange in REVIEW that half the cases with such a path parameter name. Two runs:
- principals whose every write is refused (ops is read-only, an applicant and a reviewer who own nothing,
  an unknown token): the ledger must be exactly as it was, row for row;
- the partnership's programme officer, who may write (top-ups, cancelling the exchange, ...): every transfer
  that appears must touch a partnership or exchange that an accepted (2xx) write named.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from clients.api import Principal, create_app
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from tests.api.fuzzing import BASE_URL, Fuzzer, Tally, ledger_changes, ledger_snapshot, unaccounted
from tests.api.helpers import officer_of
from tests.factories import application
from tests.workflows.conftest import Fund, assigned
from tests.workflows.conftest import funded_partnership as funded_partnership  # the fixture
from tests.workflows.conftest import ledger_store as ledger_store  # the fixture funded_partnership uses

REFUSED = ["tok-fuzz-ops-000000000", "tok-fuzz-applicant-000", "tok-fuzz-reviewer-0000", "unknown-token"]
OFFICER = ["tok-fuzz-officer-00000"]
# Per operation and generation mode: 2 modes x 46 operations x 12 = 1,104 cases per run (a few are not
# sendable, e.g. a header that is not latin-1, and a probe has no invalid request).
EXAMPLES_PER_OPERATION = 12
MIN_REQUESTS_PER_RUN = 1_000


def tokens_for(partnership_id: str) -> dict[str, Principal]:
    """The fuzz's principals: the partnership's programme officer, and four who may write nothing there (ops is
    read-only; the applicant submitted nothing and the reviewer is on no panel; an unknown token is no one)."""
    return {
        "tok-fuzz-officer-00000": Principal(
            subject=officer_of(partnership_id), role="officer", partnerships=frozenset({partnership_id})
        ),
        "tok-fuzz-ops-000000000": Principal(subject="ops-fuzz", role="ops"),
        "tok-fuzz-applicant-000": Principal(subject="applicant-fuzz", role="applicant"),
        "tok-fuzz-reviewer-0000": Principal(subject="reviewer-fuzz", role="reviewer"),
    }


async def live_exchange(dev_client: ExchangeClient, funded_partnership: Fund) -> tuple[str, str]:
    """A funded partnership and an exchange of it in REVIEW: half the cases with such a path parameter aim at
    them, so requests reach the workflow and the budget, not only a 404 (tests/api/fuzzing.py, Fuzzer.aim)."""
    partnership = await funded_partnership(5_000_000)
    app = application(visitor_partnership_id=partnership, host_partnership_id=partnership)
    await dev_client.start_exchange(app)
    await assigned(dev_client, app.application_id)
    return partnership, app.application_id


async def fuzz(
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    evidence_dir: Path,
    target: tuple[str, str],
    tokens: list[str],
    examples: int,
) -> Tally:
    partnership, application_id = target
    app = create_app(dev_client, pg_pool, tokens_for(partnership), evidence_store=FileEvidenceStore(evidence_dir))
    known = {"partnership_id": [partnership], "application_id": [application_id]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        return await Fuzzer(app, asyncio.get_running_loop(), client, known_ids=known).run(tokens, examples)


def report(name: str, tally: Tally, ledger_rows_changed: int) -> None:
    print(f"\nfuzz[{name}]: {tally.line()}; ledger rows changed: {ledger_rows_changed}")  # noqa: T201
    for line in [*tally.server_errors, *tally.failures][:40]:
        print(f"  {line}")  # noqa: T201


async def fuzz_and_compare(
    name: str,
    principals: list[str],
    examples: int,
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    evidence_dir: Path,
    funded_partnership: Fund,
) -> tuple[Tally, dict[str, set[tuple[Any, ...]]]]:
    """Fuzz a live exchange as `principals`; the tally, and the ledger rows that changed meanwhile (reported)."""
    target = await live_exchange(dev_client, funded_partnership)
    before = await ledger_snapshot(pg_pool)
    tally = await fuzz(dev_client, pg_pool, evidence_dir, target, principals, examples)
    changes = ledger_changes(before, await ledger_snapshot(pg_pool))
    report(name, tally, sum(len(rows) for rows in changes.values()))
    return tally, changes


@pytest.mark.fuzz
@pytest.mark.timeout(300)
async def test_refused_principals_get_documented_answers_and_change_no_ledger_row(
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    evidence_dir: Path,
    funded_partnership: Fund,
    fuzz_examples: int | None,
) -> None:
    """Valid and invalid requests from principals that may not write: documented 4xx, never 5xx, ledger untouched."""
    examples = fuzz_examples or EXAMPLES_PER_OPERATION
    tally, changes = await fuzz_and_compare(
        "refused", REFUSED, examples, dev_client, pg_pool, evidence_dir, funded_partnership
    )
    assert tally.server_errors == []
    assert tally.failures == []
    assert tally.accepted_writes == [], "these principals may not write anything"
    assert changes == {}
    assert tally.requests >= MIN_REQUESTS_PER_RUN * examples // EXAMPLES_PER_OPERATION


@pytest.mark.fuzz
@pytest.mark.timeout(300)
async def test_an_officer_gets_documented_answers_and_only_accepted_writes_reach_the_ledger(
    dev_client: ExchangeClient,
    pg_pool: asyncpg.Pool,
    evidence_dir: Path,
    funded_partnership: Fund,
    fuzz_examples: int | None,
) -> None:
    """An officer's requests, valid or not: never 5xx, always documented; new transfers only for accepted writes."""
    examples = fuzz_examples or EXAMPLES_PER_OPERATION
    tally, changes = await fuzz_and_compare(
        "officer", OFFICER, examples, dev_client, pg_pool, evidence_dir, funded_partnership
    )
    assert tally.server_errors == []
    assert tally.failures == []
    assert unaccounted(changes, tally.accepted_ids) == []
    assert tally.requests >= MIN_REQUESTS_PER_RUN * examples // EXAMPLES_PER_OPERATION


async def test_the_checks_fail_on_an_undocumented_status(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path
) -> None:
    """The harness can fail: against a document that no longer lists 401, an unknown token's answers are flagged."""
    app = create_app(dev_client, pg_pool, tokens_for("p-none"), evidence_store=FileEvidenceStore(evidence_dir))
    document = copy.deepcopy(app.openapi())
    for item in document["paths"].values():
        for operation in item.values():
            operation["responses"].pop("401", None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        fuzzer = Fuzzer(app, asyncio.get_running_loop(), client, document)
        tally = await fuzzer.run(["unknown-token"], 1)
    assert tally.by_status[401] > 0
    assert sum("UndefinedStatusCode" in line for line in tally.failures) == tally.by_status[401], tally.failures[:3]


def test_a_transfer_no_accepted_write_named_is_unaccounted() -> None:
    """The officer run's ledger rule can fail: a new transfer is explained only by a partnership or exchange that an
    accepted write named (its debit and credit accounts' partnership and exchange ids are columns 5-8)."""
    transfer = (7, "p-x:top-up:r1", "allocate", 100, None, None, None, "p-x", None)
    changes = {"transfers": {transfer}}
    assert unaccounted(changes, {"p-x"}) == []
    assert unaccounted(changes, {"p-y", "app-1"}) == [transfer]
