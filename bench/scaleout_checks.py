"""The scale-out bench's verdicts from plain rows: lost and double-paid exchanges, the 3/1 ratio, connections.

Pure functions, so that tests/bench/test_scaleout_checks.py proves them without a stack; bench/scaleout.py
reads the rows from Postgres, the finance receiver and pg_stat_activity and prints what these return.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PAID = "PAID"
PAYMENT_TRANSFER_KINDS = ("post", "pay_out")  # the two ledger transfers of a payment (activities/payments.py)

# The stages an exchange passes on its way to PAID, in order (schemas/stages.py); a waitlisted one is funding.
PATH_TO_PAID = ("SUBMITTED", "SCREENING", "REVIEW", "FUNDING", "AGREEMENT", "TRAVEL", "REPORTING", "PAYMENT", PAID)
_STEP = {stage: n for n, stage in enumerate(PATH_TO_PAID)} | {"WAITLISTED": PATH_TO_PAID.index("FUNDING")}

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_INVARIANT_BROKEN = 2


def lost_exchanges(started: Iterable[str], stages: Mapping[str, str]) -> list[str]:
    """Exchanges started but not PAID in the read model (missing ones included), in the order started."""
    return [application_id for application_id in started if stages.get(application_id) != PAID]


def lifecycle_progress(stages: Iterable[str], count: int) -> float:
    """How far a batch of `count` exchanges has come on its way to PAID, 0 to 1: the stages reached, summed
    over the batch (one not yet in the read model, or ended elsewhere, counts as not started). Driven all at
    once, exchanges move in step, so "a third PAID" comes right before "all PAID"; this moves all along."""
    if count <= 0:
        raise ValueError("a batch has at least one exchange")
    return sum(_STEP.get(stage, 0) for stage in stages) / (count * (len(PATH_TO_PAID) - 1))


@dataclass(frozen=True)
class Doubles:
    """Exchanges paid more than once, by the place that shows it."""

    ledger: dict[str, Counter[str]]  # application id -> transfers by kind, where a kind appears twice or more
    receiver_orders: dict[str, list[str]]  # application id -> the distinct payment orders finance stored for it
    receiver_repeats: dict[tuple[str, str], int]  # (application id, order id) -> times finance stored it, if > 1

    @property
    def exchanges(self) -> set[str]:
        return set(self.ledger) | set(self.receiver_orders) | {app for app, _ in self.receiver_repeats}

    def describe(self) -> str:
        parts = [f"{app}: ledger {dict(kinds)}" for app, kinds in sorted(self.ledger.items())]
        parts += [f"{app}: finance received orders {orders}" for app, orders in sorted(self.receiver_orders.items())]
        parts += [
            f"{app}: order {order} kept {n} times by finance"
            for (app, order), n in sorted(self.receiver_repeats.items())
        ]
        return "; ".join(parts)


def double_payments(ledger_rows: Iterable[tuple[str, str]], receiver_rows: Iterable[tuple[str, str]]) -> Doubles:
    """From (application id, transfer kind) rows of the ledger's payment transfers, and (application id,
    payment order id) rows of what the finance receiver stored (one per delivery it kept): every exchange
    with two posts or two payouts, two payment orders, or one order kept twice."""
    kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for application_id, kind in ledger_rows:
        if kind in PAYMENT_TRANSFER_KINDS:
            kinds[application_id][kind] += 1
    ledger = {app: counted for app, counted in kinds.items() if max(counted.values()) > 1}
    orders: defaultdict[str, set[str]] = defaultdict(set)
    stored: Counter[tuple[str, str]] = Counter()
    for application_id, order_id in receiver_rows:
        orders[application_id].add(order_id)
        stored[application_id, order_id] += 1
    receiver_orders = {app: sorted(ids) for app, ids in orders.items() if len(ids) > 1}
    repeats = {pair: n for pair, n in stored.items() if n > 1}
    return Doubles(ledger=ledger, receiver_orders=receiver_orders, receiver_repeats=repeats)


@dataclass(frozen=True)
class Ratio:
    """3 workers' throughput over 1 worker's, per repeat, and their median and spread."""

    per_repeat: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.per_repeat)

    def describe(self) -> str:
        if len(self.per_repeat) == 1:
            return f"{self.median:.2f}x"
        low, high = min(self.per_repeat), max(self.per_repeat)
        each = ", ".join(f"{r:.2f}" for r in self.per_repeat)
        return f"{self.median:.2f}x median (min {low:.2f}, max {high:.2f}; {each})"


def throughput_ratio(one_worker_per_s: Sequence[float], three_workers_per_s: Sequence[float]) -> Ratio:
    """Repeat k's 3-worker rate over its own 1-worker rate (run next to each other, on the same machine load)."""
    if not one_worker_per_s or len(one_worker_per_s) != len(three_workers_per_s):
        raise ValueError("one rate of each phase per repeat, at least one repeat")
    if min(one_worker_per_s) <= 0:
        raise ValueError("a phase with no throughput has no ratio")
    return Ratio(tuple(b / a for a, b in zip(one_worker_per_s, three_workers_per_s, strict=True)))


def connection_peaks(samples: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The most connections each process (application_name) held at once over pg_stat_activity samples."""
    peaks: dict[str, int] = {}
    for sample in samples:
        for name, count in sample.items():
            peaks[name] = max(peaks.get(name, 0), count)
    return peaks


def describe_connections(peaks: Mapping[str, int], peak_total: int, max_connections: int) -> str:
    """`worker 10/10/10, dispatcher 2/2, api 3/3, bench 4; peak 45 of max_connections 100`: by role (the
    name up to its last `-`), each process's peak in the order of their names."""
    roles: defaultdict[str, list[int]] = defaultdict(list)
    for name in sorted(peaks):
        role = name.rsplit("-", 1)[0] if "-" in name else name
        roles[role].append(peaks[name])
    parts = [f"{role} {'/'.join(str(n) for n in counts)}" for role, counts in roles.items()]
    return f"{', '.join(parts)}; peak {peak_total} of max_connections {max_connections}"


def exit_code(*, run_failed: bool, lost: int, double: int, ledger_clean: bool) -> int:
    """1 if the run itself failed (nothing can be said), else 2 if an invariant broke, else 0."""
    if run_failed:
        return EXIT_RUN_FAILED
    return EXIT_OK if lost == 0 and double == 0 and ledger_clean else EXIT_INVARIANT_BROKEN
