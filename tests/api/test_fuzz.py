"""Schemathesis against the OpenAPI document: no 5xx for any generated request, and refused ones book nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.case import Case

from clients.api import Principal, create_app
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from ledger.store import LedgerStore

TOKENS = {
    "tok-fuzz-officer-00000": Principal(subject="officer-fuzz", role="officer"),
    "tok-fuzz-ops-000000000": Principal(subject="ops-fuzz", role="ops"),
    "tok-fuzz-applicant-000": Principal(subject="applicant-fuzz", role="applicant"),
    "tok-fuzz-reviewer-0000": Principal(subject="reviewer-fuzz", role="reviewer"),
}
# Principals whose every write is refused: ops is read-only, the applicant and reviewer own nothing,
# and an unknown token is not authenticated. Requests from them must leave the ledger exactly as it was.
REFUSED = ["tok-fuzz-ops-000000000", "tok-fuzz-applicant-000", "tok-fuzz-reviewer-0000", "unknown-token"]
EXAMPLES_PER_RUN = 120
REQUEST_TIMEOUT_S = 30


async def ledger_snapshot(pool: asyncpg.Pool) -> tuple[Any, ...]:
    transfers = await pool.fetchval("SELECT count(*) FROM ledger_transfers")
    balances = await LedgerStore(pool).partnership_balances()
    return transfers, sorted((b.partnership_id, b.held_cents, b.paid_cents, b.available_cents) for b in balances)


def latin1(headers: dict[str, str]) -> bool:
    """HTTP header values travel as latin-1; httpx cannot send anything else, so such cases say nothing."""
    try:
        for value in headers.values():
            value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def utf8(value: Any) -> bool:
    """Multipart parts (evidence uploads) travel as bytes: text with lone surrogates cannot be sent at all."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list | tuple):
        return all(utf8(item) for item in value)
    return True


async def fuzz(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path, mode: GenerationMode, tokens: list[str]
) -> list[str]:
    """Send EXAMPLES_PER_RUN generated requests; return a line per 5xx answer."""
    app = create_app(dev_client, pg_pool, TOKENS, evidence_store=FileEvidenceStore(evidence_dir))
    schema = schemathesis.openapi.from_dict(app.openapi())
    loop = asyncio.get_running_loop()
    server_errors: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:

        def send(case: Case[Any], token: str) -> httpx.Response:
            kwargs = case.as_transport_kwargs(base_url="http://api", headers={"Authorization": f"Bearer {token}"})
            assume(latin1(kwargs["headers"]))
            files = kwargs.get("files")
            assume(files is None or utf8(files))
            request = client.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=kwargs["headers"],
                json=kwargs.get("json"),
                content=kwargs.get("data"),
                files=files,
            )
            return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=REQUEST_TIMEOUT_S)

        @settings(max_examples=EXAMPLES_PER_RUN, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=schema.as_strategy(generation_mode=mode), token=st.sampled_from(tokens))
        def run(case: Case[Any], token: str) -> None:
            response = send(case, token)
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}")
            else:
                assert response.status_code < 300 or response.headers["content-type"] == "application/problem+json"

        # Hypothesis drives a synchronous test: run it in a thread while this loop serves the app.
        await asyncio.to_thread(run)
    return server_errors


async def test_refused_requests_never_fail_and_book_nothing(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path
) -> None:
    """Valid and invalid requests from principals that may not write answer 4xx, never 5xx; the ledger is unchanged."""
    before = await ledger_snapshot(pg_pool)
    errors = await fuzz(dev_client, pg_pool, evidence_dir, GenerationMode.POSITIVE, REFUSED)
    errors += await fuzz(dev_client, pg_pool, evidence_dir, GenerationMode.NEGATIVE, REFUSED)
    assert errors == []
    assert await ledger_snapshot(pg_pool) == before


async def test_an_officer_never_gets_a_5xx(
    dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path
) -> None:
    """Requests an officer may send, valid or not, reach the engine and answer anything but 5xx."""
    errors = await fuzz(dev_client, pg_pool, evidence_dir, GenerationMode.POSITIVE, ["tok-fuzz-officer-00000"])
    errors += await fuzz(dev_client, pg_pool, evidence_dir, GenerationMode.NEGATIVE, ["tok-fuzz-officer-00000"])
    assert errors == []
