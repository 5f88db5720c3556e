"""The REST fuzz harness (issue 16, item 4; docs/adr/0024-every-door-fuzzed.md): schemathesis cases sent to the
app in process, checked, counted, and the ledger compared before and after.

Shared by the CI run (tests/api/test_fuzz.py, about 1,100 requests) and `make fuzz` (as many as asked). The
app runs in the test's event loop (it holds the asyncpg pool and the Temporal client); Hypothesis drives a
synchronous test, so the cases are generated in a worker thread and each request is handed to the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

BASE_URL = "http://api"
REQUEST_TIMEOUT_S = 30
# The three properties every answer must have, whatever was sent (the list), plus its media type.
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Path parameters and body fields that name what a write touches in the ledger.
LEDGER_IDS = ("application_id", "partnership_id")

# The ledger's tables as rows without timestamps: accounts (balances and holds pending on them), transfers
# (allocate, hold, post, void, pay_out: a hold is a transfer of kind 'hold'), entries (the postings) and
# payment orders. Row ids are kept: a new row with an old shape is still a change.
LEDGER_QUERIES = {
    "accounts": "SELECT code, kind::text, partnership_id, exchange_id, debits_pending, debits_posted, "
    "credits_pending, credits_posted FROM ledger_accounts",
    "transfers": "SELECT t.id, t.idempotency_key, t.kind::text, t.amount_cents, t.pending_id, "
    "d.partnership_id, d.exchange_id, c.partnership_id, c.exchange_id FROM ledger_transfers t "
    "JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id",
    "entries": "SELECT account_id, transfer_id, debits_pending, debits_posted, credits_pending, credits_posted "
    "FROM ledger_entries",
    "payment_orders": "SELECT payment_order_id, application_id, partnership_id, amount_cents, hold_id, "
    "post_transfer_id, payout_transfer_id, confirmed_at, payment_reference FROM payment_orders",
}

LedgerSnapshot = dict[str, frozenset[tuple[Any, ...]]]


async def ledger_snapshot(pool: asyncpg.Pool) -> LedgerSnapshot:
    """Every row of the ledger's tables, in one transaction so the tables agree with each other."""
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
        return {
            table: frozenset(tuple(row) for row in await connection.fetch(query))
            for table, query in LEDGER_QUERIES.items()
        }


def ledger_changes(before: LedgerSnapshot, after: LedgerSnapshot) -> dict[str, set[tuple[Any, ...]]]:
    """Rows that appeared or changed, per table (a changed row shows as its new version); empty tables left out."""
    changes = {table: set(after[table] - before[table]) for table in LEDGER_QUERIES}
    gone = {table: before[table] - after[table] for table in ("transfers", "entries")}
    # Transfers and entries are immutable (database triggers): one that vanished is a change too.
    for table, rows in gone.items():
        changes[table] |= {("gone", *row) for row in rows}
    return {table: rows for table, rows in changes.items() if rows}


def unaccounted(changes: dict[str, set[tuple[Any, ...]]], accepted_ids: set[str]) -> list[tuple[Any, ...]]:
    """New transfers that touch no partnership or exchange an accepted write named (the accounts, entries and
    payment orders of a transfer follow from it, and are compared whole by the zero-change run)."""
    return sorted(
        (row for row in changes.get("transfers", set()) if not accepted_ids & {str(v) for v in row[5:9] if v}),
        key=str,
    )


@dataclass
class Tally:
    """What one fuzz run sent and got: the figures the test prints and asserts on."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    accepted_writes: list[str] = field(default_factory=list)
    accepted_ids: set[str] = field(default_factory=set)
    no_negative: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.by_status.items()))
        return (
            f"{self.requests} requests over {len(self.by_operation)} operations in {self.seconds:.1f} s; "
            f"5xx: {len(self.server_errors)}; check failures: {len(self.failures)}; "
            f"accepted writes: {len(self.accepted_writes)}; statuses {{{statuses}}}"
        )


def latin1(headers: dict[str, str]) -> bool:
    """HTTP header values travel as latin-1; httpx cannot send anything else, so such cases say nothing."""
    try:
        for value in headers.values():
            value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def sendable(files: Any) -> bool:
    """Multipart parts (evidence uploads) travel as bytes: a part that is a number, or text with a lone
    surrogate, cannot be sent by any client at all, so such cases say nothing about the API."""
    if isinstance(files, str):
        try:
            files.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(files, list | tuple):
        return all(sendable(item) for item in files)
    if isinstance(files, dict):
        return all(sendable(item) for item in files.items())
    return files is None or isinstance(files, bytes)


def named_ids(case: Case[Any]) -> set[str]:
    """The partnership and application ids a request names, in its path or at the top of its JSON body."""
    found = {str(case.path_parameters[name]) for name in LEDGER_IDS if name in (case.path_parameters or {})}
    if isinstance(case.body, dict):
        found |= {str(case.body[name]) for name in LEDGER_IDS if isinstance(case.body.get(name), str)}
    return found


class Fuzzer:
    """Sends generated cases to one app over ASGI from Hypothesis' thread, checking and counting each answer."""

    def __init__(
        self,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        client: httpx.AsyncClient,
        document: dict[str, Any] | None = None,
        known_ids: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`document`: the OpenAPI document to hold the answers to (the app's own unless a test changes it);
        `known_ids`: path parameter -> ids that exist (a live exchange, a funded partnership), aimed at by half
        the cases whose path has that parameter, so they reach the workflow and the ledger, not only a 404."""
        self.known_ids = dict(known_ids or {})
        self.app = app
        self.loop = loop
        self.client = client
        self.schema = schemathesis.openapi.from_dict(document or app.openapi())
        self.tally = Tally()

    def operations(self) -> list[APIOperation[Any, Any, Any, Any]]:
        found: list[APIOperation[Any, Any, Any, Any]] = []
        for result in self.schema.get_all_operations():
            assert isinstance(result, Ok), f"the document has an operation schemathesis cannot read: {result}"
            found.append(result.ok())
        return found

    def send(self, case: Case[Any], token: str) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers={"Authorization": f"Bearer {token}"})
        assume(latin1(kwargs["headers"]))
        files = kwargs.get("files")
        assume(sendable(files))
        request = self.client.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=kwargs["headers"],
            json=kwargs.get("json"),
            content=kwargs.get("data"),
            files=files,
        )
        request.read()  # a multipart body is a stream: read it whole, so the checks can see what was sent
        response = asyncio.run_coroutine_threadsafe(self.client.send(request), self.loop).result(
            timeout=REQUEST_TIMEOUT_S
        )
        self.record(case, response)

    def record(self, case: Case[Any], response: httpx.Response) -> None:
        where = f"{case.method} {case.operation.path}"
        self.tally.requests += 1
        self.tally.by_status[response.status_code] += 1
        self.tally.by_operation[where] += 1
        if response.status_code >= 500:
            self.tally.server_errors.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
            )
        if response.status_code < 300 and case.method.upper() in WRITE_METHODS:
            self.tally.accepted_writes.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
            self.tally.accepted_ids |= named_ids(case)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            messages = "; ".join(sorted({f"{type(e).__name__}: {e.title}" for e in group.exceptions}))
            self.tally.failures.append(f"{where} -> {response.status_code}: {messages} | {response.text[:300]}")
        except AssertionError as error:  # a single failed check is raised on its own
            self.tally.failures.append(f"{where} -> {response.status_code}: {error} | {response.text[:300]}")

    def aim(self, case: Case[Any], pick: int) -> None:
        """With pick 0 or 1 (half the cases), a path parameter with known ids names one of them."""
        for name, ids in self.known_ids.items():
            if pick < 2 and ids and name in (case.path_parameters or {}):
                case.path_parameters[name] = ids[pick % len(ids)]

    def run_operation(
        self, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, tokens: Iterable[str], examples: int
    ) -> None:
        """`examples` generated cases of one operation in one mode, each with one of `tokens`."""

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate],  # no shrinking: a failure is recorded, never raised, so there is nothing to shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=mode),
            token=st.sampled_from(list(tokens)),
            pick=st.integers(min_value=0, max_value=3),
        )
        def fuzz_one(case: Case[Any], token: str, pick: int) -> None:
            self.aim(case, pick)
            self.send(case, token)

        try:
            fuzz_one()
        except Unsatisfiable:
            # An operation without parameters or a body (the probes) has no invalid request to generate.
            assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"
            self.tally.no_negative.append(operation.label)

    async def run(self, tokens: Sequence[str], examples_per_operation: int) -> Tally:
        """Every operation, positive then negative cases, `examples_per_operation` of each."""
        started = time.monotonic()
        for operation in self.operations():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                await asyncio.to_thread(self.run_operation, operation, mode, tokens, examples_per_operation)
        self.tally.seconds += time.monotonic() - started
        return self.tally
