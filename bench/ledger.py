"""Benchmark of the ledger's hot path (not a test): holds per second and latency against raw baselines.

    .venv/bin/python -m bench.ledger [--concurrency 32] [--seconds 3.5] [--rounds 3]

Uses DATABASE_URL's server, or starts an embedded Postgres in a temporary directory; either way it
works in a fresh database that it drops at the end. Two scenarios: every hold on ONE hot partnership
budget, and holds spread over 15 budgets. In each, at the same concurrency and in the same run, it
measures three ways of placing a hold of 1,100 EUR, interleaved round by round (median round kept):

- raw UPDATE + INSERT: the bare baseline of the issue. A conditional UPDATE of a budget row, then
  an INSERT of the hold, in one transaction through asyncpg: what a hold costs without a ledger.
- raw one statement: the same two writes fused into one statement (a data-modifying CTE), the
  fastest possible raw write. Shown for reference: it does a quarter of the ledger's writes.
- ledger.hold: LedgerStore.hold, the real thing (idempotency key, exchange account, transfer,
  two entries, typed refusal), one round trip.

Targets (issue 3) on the hot budget: >= 1,500 holds/s and >= 70 % of the raw UPDATE + INSERT
baseline. After the run: zero overspend, checked by check_ledger and by reading every budget.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from ledger.checks import check_ledger
from ledger.migrate import apply_migrations
from ledger.store import LedgerStore
from workers.devstack import EmbeddedPostgres, create_database, drop_database

HOLD_CENTS = 1_100 * 100
BUDGET_CENTS = 1_000_000_000_000  # the largest allocation: room for 9 million holds, never exhausted here
SPREAD_BUDGETS = 15
TARGET_HOLDS_PER_S = 1_500
TARGET_RATIO = 0.70

RAW_SCHEMA = """
CREATE TABLE bench_raw_budgets (
    id              int PRIMARY KEY,
    held_cents      bigint NOT NULL DEFAULT 0,
    allocated_cents bigint NOT NULL
);
CREATE TABLE bench_raw_holds (
    id           bigserial PRIMARY KEY,
    budget_id    int NOT NULL,
    exchange_id  text NOT NULL,
    amount_cents bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
"""
RAW_UPDATE = """UPDATE bench_raw_budgets SET held_cents = held_cents + $2
                 WHERE id = $1 AND held_cents + $2 <= allocated_cents RETURNING id"""
RAW_INSERT = "INSERT INTO bench_raw_holds (budget_id, exchange_id, amount_cents) VALUES ($1, $3, $2)"
RAW_ONE_STATEMENT = """
WITH budget AS (
    UPDATE bench_raw_budgets SET held_cents = held_cents + $2
     WHERE id = $1 AND held_cents + $2 <= allocated_cents RETURNING id
)
INSERT INTO bench_raw_holds (budget_id, exchange_id, amount_cents)
SELECT id, $3, $2 FROM budget RETURNING id"""

# (worker number, sequence number, budget number) -> one hold
HoldOp = Callable[[int, int, int], Awaitable[None]]


@dataclass
class Sample:
    holds: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.holds / self.seconds


@dataclass
class Result:
    scenario: str
    variant: str
    rounds: list[Sample]

    @property
    def median_per_second(self) -> float:
        return statistics.median(s.per_second for s in self.rounds)

    def latency_ms(self, quantile: float) -> float:
        latencies = sorted(x for s in self.rounds for x in s.latencies_s)
        return 1000 * latencies[min(len(latencies) - 1, int(quantile * len(latencies)))]


async def drive(op: HoldOp, concurrency: int, seconds: float, budgets: int) -> Sample:
    """`concurrency` workers place holds back to back for `seconds`; each hold is timed."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await op(w, done, (w + done) % budgets)
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return Sample(sum(counts), time.perf_counter() - started, latencies)


def variants(pool: asyncpg.Pool, run_id: str) -> dict[str, Callable[[str, int], HoldOp]]:
    """Each variant, given a round tag and its first budget number, places one hold per call."""
    store = LedgerStore(pool)

    def raw_transaction(tag: str, first_budget: int) -> HoldOp:
        async def op(w: int, n: int, b: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                if await conn.fetchrow(RAW_UPDATE, first_budget + b, HOLD_CENTS) is None:
                    raise RuntimeError("raw budget exhausted: the benchmark is mis-sized")
                await conn.execute(RAW_INSERT, first_budget + b, HOLD_CENTS, f"{tag}-{w}-{n}")

        return op

    def raw_one_statement(tag: str, first_budget: int) -> HoldOp:
        async def op(w: int, n: int, b: int) -> None:
            if await pool.fetchrow(RAW_ONE_STATEMENT, first_budget + b, HOLD_CENTS, f"{tag}-{w}-{n}") is None:
                raise RuntimeError("raw budget exhausted: the benchmark is mis-sized")

        return op

    def ledger_hold(tag: str, first_budget: int) -> HoldOp:
        async def op(w: int, n: int, b: int) -> None:
            await store.hold(
                idempotency_key=f"{tag}-{w}-{n}:hold",
                partnership_id=f"{run_id}-b{first_budget + b}",
                application_id=f"{tag}-{w}-{n}",
                amount_cents=HOLD_CENTS,
            )

        return op

    return {
        "raw UPDATE + INSERT": raw_transaction,
        "raw one statement": raw_one_statement,
        "ledger.hold": ledger_hold,
    }


async def prepare(pool: asyncpg.Pool, run_id: str, budgets: int) -> None:
    await pool.execute(RAW_SCHEMA)
    store = LedgerStore(pool)
    for b in range(budgets):
        await pool.execute("INSERT INTO bench_raw_budgets (id, allocated_cents) VALUES ($1, $2)", b, BUDGET_CENTS)
        await store.allocate(
            idempotency_key=f"{run_id}-b{b}:allocate", partnership_id=f"{run_id}-b{b}", amount_cents=BUDGET_CENTS
        )


async def measure(dsn: str, concurrency: int, seconds: float, rounds: int) -> tuple[list[Result], list[str]]:
    run_id = uuid.uuid4().hex[:6]
    scenarios = {"hot (1 budget)": (0, 1), f"spread ({SPREAD_BUDGETS} budgets)": (1, SPREAD_BUDGETS)}
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        await prepare(pool, run_id, 1 + SPREAD_BUDGETS)
        ways = variants(pool, run_id)
        results: list[Result] = []
        for scenario, (first_budget, budgets) in scenarios.items():
            by_variant = {name: Result(scenario, name, []) for name in ways}
            for name, make in ways.items():  # warm-up: connections, prepared statements, plpgsql plans
                await drive(make(f"{run_id}-warm-{first_budget}-{len(name)}", first_budget), concurrency, 0.5, budgets)
            for r in range(rounds):
                for name, make in ways.items():
                    tag = f"{run_id}-{first_budget}-{r}-{name.split()[0]}{len(name)}"
                    by_variant[name].rounds.append(await drive(make(tag, first_budget), concurrency, seconds, budgets))
            results.extend(by_variant.values())
        problems = await verify(pool)
    finally:
        await pool.close()
    return results, problems


async def verify(pool: asyncpg.Pool) -> list[str]:
    """Zero overspend: every ledger check passes and no budget, ledger or raw, is below zero."""
    problems: list[str] = []
    report = await check_ledger(pool)
    problems += [f"check {c.name}: {c.breaches[0]}" for c in report.checks if not c.ok]
    store = LedgerStore(pool)
    problems += [
        f"budget {b.partnership_id} overspent: {b.available_cents} cents available"
        for b in await store.partnership_balances()
        if b.available_cents < 0
    ]
    overspent_raw = await pool.fetchval("SELECT count(*) FROM bench_raw_budgets WHERE held_cents > allocated_cents")
    if overspent_raw:
        problems.append(f"{overspent_raw} raw budget(s) overspent")
    return problems


def report(results: list[Result], server: str, concurrency: int, seconds: float, rounds: int) -> bool:
    print(
        f"ledger hold benchmark: holds of {HOLD_CENTS // 100:,} EUR, concurrency {concurrency}, "
        f"{rounds} interleaved rounds x {seconds:g} s per variant (median round; latency over all rounds)"
    )
    print(f"server: {server}")
    print()
    header = f"{'scenario':<22}{'variant':<22}{'holds/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    header += f"{'vs raw tx':>11}{'vs raw 1-stmt':>15}"
    print(header)
    print("-" * len(header))
    verdicts: dict[str, float] = {}
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = {r.variant: r for r in results if r.scenario == scenario}
        raw_tx = rows["raw UPDATE + INSERT"].median_per_second
        raw_one = rows["raw one statement"].median_per_second
        for variant, result in rows.items():
            rate = result.median_per_second
            versus = (
                f"{rate / raw_tx:>10.0%}{rate / raw_one:>15.0%}" if variant == "ledger.hold" else f"{'':>10}{'':>15}"
            )
            print(
                f"{scenario:<22}{variant:<22}{rate:>10,.0f}{result.latency_ms(0.50):>9.2f}"
                f"{result.latency_ms(0.99):>9.2f} {versus}"
            )
            if scenario.startswith("hot") and variant == "ledger.hold":
                verdicts = {"rate": rate, "ratio_tx": rate / raw_tx, "ratio_one": rate / raw_one}
    print()
    rate_ok = verdicts["rate"] >= TARGET_HOLDS_PER_S
    ratio_ok = verdicts["ratio_tx"] >= TARGET_RATIO
    print(
        f"target hot budget >= {TARGET_HOLDS_PER_S:,} holds/s: {'MET' if rate_ok else 'NOT MET'} "
        f"({verdicts['rate']:,.0f} holds/s)"
    )
    print(
        f"target hot budget >= {TARGET_RATIO:.0%} of the raw UPDATE + INSERT baseline: "
        f"{'MET' if ratio_ok else 'NOT MET'} ({verdicts['ratio_tx']:.0%})"
    )
    print(
        f"for reference, hot budget vs the raw one-statement write: {verdicts['ratio_one']:.0%} "
        f"({'above' if verdicts['ratio_one'] >= TARGET_RATIO else 'below'} {TARGET_RATIO:.0%}; it writes 2 rows, "
        "the ledger 5, see docs/adr/0003)"
    )
    return rate_ok and ratio_ok


async def server_description(dsn: str, embedded: bool) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        commit = await conn.fetchval("SHOW synchronous_commit")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    where = "embedded Postgres in a temporary directory" if embedded else "DATABASE_URL"
    return f"PostgreSQL {version} ({where}; synchronous_commit={commit}, fsync={fsync}; {os.cpu_count()} CPUs)"


async def run(admin_dsn: str, embedded: bool, args: argparse.Namespace) -> int:
    dsn = await create_database(admin_dsn, prefix="cx_bench")
    try:
        await apply_migrations(dsn)
        server = await server_description(dsn, embedded)
        results, problems = await measure(dsn, args.concurrency, args.seconds, args.rounds)
    finally:
        await drop_database(admin_dsn, dsn)
    targets_met = report(results, server, args.concurrency, args.seconds, args.rounds)
    if problems:
        print("OVERSPEND OR BROKEN INVARIANT after the run:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("zero overspend: every ledger check passed, no ledger or raw budget below zero")
    return 0 if targets_met else 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers and pool size (32)")
    parser.add_argument("--seconds", type=float, default=3.5, help="length of one measured round (3.5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant (3)")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 200 or not 0.5 <= args.seconds <= 60 or not 1 <= args.rounds <= 10:
        parser.error("--concurrency 1-200, --seconds 0.5-60, --rounds 1-10")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return asyncio.run(run(configured, False, args))
    state = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
    server = EmbeddedPostgres(state / "pgdata")
    try:
        return asyncio.run(run(server.start(), True, args))
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
