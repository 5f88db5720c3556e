"""The lifecycle benchmark's figures: what one run measured, the targets of issue 12, a table and one JSON line."""

from __future__ import annotations

import argparse
import math
import os
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import actions
from bench.actions import ActionCount
from bench.drivers import Recorder
from bench.plan import BarePlan

TARGET_ACTIONS_PER_PAID = 30
TARGET_EXCHANGES_RATIO = 0.9
TARGET_INTAKE_RATIO = 2.0
TARGET_INTAKE_S = 120.0
TARGET_INTAKE_SIZE = 1_500
TARGET_RSS_BYTES = 300 * 1024 * 1024
TARGET_RSS_OPEN = 10_000
TARGET_REVIEW_P50_S = 0.300
TARGET_REVIEW_P99_S = 1.0
# The SDK's default `max_cached_workflows` (workers/main.py sets none): a worker keeps at most this many
# workflows in memory; the others live on the server and are replayed when they next have work.
WORKER_CACHE = 1_000
MIB = 1024 * 1024


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p50 of 1..100 is 50, p99 is 99); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{1000 * seconds:,.0f}"


def _x(values: list[float]) -> str:
    s = spread(values)
    return f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def _per(counter: Counter[str], runs: int) -> str:
    return ", ".join(f"{name} {n / runs:.1f}" for name, n in counter.most_common())


@dataclass
class Rep:
    """One measured run of one variant: its workflows driven to their end at once (or one at a time)."""

    variant: str  # "ours" (Exchange) or "bare"
    pair: int
    workflows: int
    seconds: float
    actions: ActionCount  # summed over the workflows
    per_workflow_actions: list[int]
    recorder: Recorder
    cpu_s: dict[str, float]  # by part of the stack
    machine_busy_s: float
    machine_total_s: float
    worker_rss_peak: int
    worker_counters: dict[str, float] = field(default_factory=dict)  # the SDK's, over the run

    @property
    def per_s(self) -> float:
        return self.workflows / self.seconds

    @property
    def activities_per_s(self) -> float:
        return self.actions.by_kind[actions.ACTIVITY] / self.seconds

    @property
    def worker_cpu_s(self) -> float:
        return self.cpu_s[f"worker ({self.variant})"]


@dataclass
class Intake:
    """A burst of starts, timed until every workflow waits for its first message; the worker's memory then."""

    variant: str  # "intake" (exchanges), "bare", or "park" (more exchanges, for memory only)
    count: int
    seconds: float
    starts_answered_s: float | None  # until every start request was answered (a park starts in batches)
    marks_s: list[float] = field(repr=False)  # when each one was seen waiting
    rss_before: int
    rss_parked: int
    open_after: int  # workflows of this worker open (parked) after the burst
    worker_counters: dict[str, float] = field(default_factory=dict)  # the SDK's, over the burst
    cpu_s: dict[str, float] = field(default_factory=dict)  # by part of the stack, over the burst
    machine_busy_s: float = 0.0
    machine_total_s: float = 0.0

    @property
    def cached_added(self) -> int:
        """How many workflows this burst added to the worker's cache (which holds at most WORKER_CACHE)."""
        return min(self.open_after, WORKER_CACHE) - min(self.open_after - self.count, WORKER_CACHE)

    @property
    def rss_per_cached_bytes(self) -> float:
        """Worker memory per workflow this burst added to its cache; NaN if it added none (the cache was full)."""
        if self.cached_added == 0:
            return math.nan
        return (self.rss_parked - self.rss_before) / self.cached_added


def _by_name(reps: list[Rep]) -> dict[str, list[float]]:
    """Update round trips of these runs, all together and by update name."""
    by_name: dict[str, list[float]] = {"all updates": []}
    for r in reps:
        for name, values in r.recorder.latencies_s.items():
            by_name.setdefault(name, []).extend(values)
            by_name["all updates"].extend(values)
    return by_name


def _per_workflow(count: ActionCount, runs: int) -> dict[str, Any]:
    def scaled(counter: Counter[str]) -> dict[str, float]:
        return {k: round(v / runs, 2) for k, v in counter.most_common()}

    return {
        "total": round(count.total / runs, 2),
        "by_kind": scaled(count.by_kind),
        "by_activity": scaled(count.by_activity),
        "local_activities": scaled(count.local_activities),
        "updates": scaled(count.updates),
        "signals": scaled(count.signals),
        "patch_only_marker_tasks": round(count.patch_only_marker_tasks / runs, 2),
    }


@dataclass
class Results:
    args: argparse.Namespace
    server: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    plan: BarePlan | None = None
    idle_rss: dict[str, int] = field(default_factory=dict)
    probe: list[Rep] = field(default_factory=list)
    reps: list[Rep] = field(default_factory=list)
    intake: list[Intake] = field(default_factory=list)
    failure: str | None = None  # what ended the run early, if anything did
    # `cx ledger check` on the run's database once it has measured: the names of the checks that failed.
    ledger_breaches: list[str] | None = None

    def of(self, variant: str, reps: list[Rep] | None = None) -> list[Rep]:
        return [r for r in (self.reps if reps is None else reps) if r.variant == variant]

    def intake_of(self, variant: str) -> Intake | None:
        return next((i for i in self.intake if i.variant == variant), None)

    def worker_rss_with(self, open_exchanges: int) -> tuple[float, str] | None:
        """The exchange worker's RSS with that many exchanges open: measured if a burst left that many,
        else projected from the intake: RSS before it plus its memory per cached workflow, for as many
        as the cache holds (beyond WORKER_CACHE, parked exchanges live on the server, not in the worker)."""
        bursts = [i for i in self.intake if i.variant in ("intake", "park")]
        measured = [i for i in bursts if i.open_after >= open_exchanges]
        if measured:
            return measured[0].rss_parked, f"measured with {measured[0].open_after:,} open"
        intake = self.intake_of("intake")
        if intake is None:
            return None
        projected = intake.rss_before + intake.rss_per_cached_bytes * min(open_exchanges, WORKER_CACHE)
        return projected, f"projected from {intake.count:,} open: the worker caches at most {WORKER_CACHE:,}"

    def paid_actions(self) -> tuple[ActionCount, list[int]]:
        """Actions of every exchange of the measured pairs (all PAID), summed, and each one's total."""
        ours = self.of("ours")
        return sum((r.actions for r in ours), ActionCount(runs=0)), [n for r in ours for n in r.per_workflow_actions]

    def ratios(self, metric: Callable[[Rep], float]) -> list[float]:
        """ours / bare for each pair."""
        out = []
        for pair in sorted({r.pair for r in self.reps}):
            ours = [r for r in self.of("ours") if r.pair == pair]
            bare = [r for r in self.of("bare") if r.pair == pair]
            if ours and bare:
                out.append(metric(ours[0]) / metric(bare[0]))
        return out

    def targets(self) -> list[tuple[str, bool, str]]:
        """(target, met, what was measured), for each target this run measured."""
        out: list[tuple[str, bool, str]] = []
        if self.reps:
            paid, per = self.paid_actions()
            mean = paid.total / len(per)
            target = f"billable actions per PAID exchange <= {TARGET_ACTIONS_PER_PAID}"
            out.append((target, mean <= TARGET_ACTIONS_PER_PAID, f"{mean:.1f}"))
            ratios = self.ratios(lambda r: r.per_s)
            target = f"exchanges/s >= {TARGET_EXCHANGES_RATIO}x bare"
            out.append((target, statistics.median(ratios) >= TARGET_EXCHANGES_RATIO, _x(ratios)))
        if self.probe:
            reviews = _by_name(self.of("ours", self.probe)).get("submit_review", [])
            p50, p99 = quantile(reviews, 0.5), quantile(reviews, 0.99)
            target = (
                f"submit_review round trip p50 < {_ms(TARGET_REVIEW_P50_S)} ms, "
                f"p99 < {_ms(TARGET_REVIEW_P99_S)} ms at low load"
            )
            measured = f"p50 {_ms(p50)} ms, p99 {_ms(p99)} ms, {len(reviews)} reviews"
            out.append((target, p50 < TARGET_REVIEW_P50_S and p99 < TARGET_REVIEW_P99_S, measured))
        ours, bare = self.intake_of("intake"), self.intake_of("bare")
        if ours and bare:
            stated = ours.count == TARGET_INTAKE_SIZE
            note = "" if stated else f" (stated for {TARGET_INTAKE_SIZE:,}; this run: {ours.count:,})"
            ratio = ours.seconds / bare.seconds
            target = f"intake into REVIEW within {TARGET_INTAKE_RATIO:g}x bare{note}"
            out.append((target, ratio <= TARGET_INTAKE_RATIO, f"{ratio:.2f}x"))
            target = f"intake into REVIEW under {TARGET_INTAKE_S:.0f} s{note}"
            out.append((target, ours.seconds < TARGET_INTAKE_S, f"{ours.seconds:.1f} s"))
        rss_with = self.worker_rss_with(TARGET_RSS_OPEN)
        if rss_with:
            rss, how = rss_with
            target = f"worker RSS with {TARGET_RSS_OPEN:,} open exchanges <= {TARGET_RSS_BYTES // MIB} MB"
            out.append((target, rss <= TARGET_RSS_BYTES, f"{rss / MIB:,.0f} MB, {how}"))
        if self.ledger_breaches is not None:
            breached = ", ".join(self.ledger_breaches) or "every check passed"
            out.append(("cx ledger check clean after the run", not self.ledger_breaches, breached))
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "benchmark": "lifecycle",
            "server": self.server,
            "cpus": os.cpu_count(),
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "args": {k: v for k, v in vars(self.args).items() if k != "json"},
            "bare_plan": self.plan.model_dump() if self.plan else None,
            "worker_rss_idle_mb": {k: round(v / MIB, 1) for k, v in self.idle_rss.items()},
            "probe": [_rep_json(r) for r in self.probe],
            "reps": [_rep_json(r) for r in self.reps],
        }
        if self.probe:
            out["low_load_update_ms"] = {v: _latency_json(_by_name(self.of(v, self.probe))) for v in ("ours", "bare")}
        if self.reps:
            paid, per = self.paid_actions()
            out["actions_per_paid_exchange"] = _per_workflow(paid, len(per)) | {"min": min(per), "max": max(per)}
            out["ratio_ours_bare"] = {
                "exchanges_per_s": spread(self.ratios(lambda r: r.per_s)),
                "activities_per_s": spread(self.ratios(lambda r: r.activities_per_s)),
            }
            out["loaded_update_ms"] = {v: _latency_json(_by_name(self.of(v))) for v in ("ours", "bare")}
        out["intake"] = [_intake_json(i) for i in self.intake]
        rss_with = self.worker_rss_with(TARGET_RSS_OPEN)
        if rss_with:
            out[f"worker_rss_{TARGET_RSS_OPEN}_open"] = {"mb": round(rss_with[0] / MIB, 1), "basis": rss_with[1]}
        out["targets"] = [{"target": t, "met": m, "measured": v} for t, m, v in self.targets()]
        out["failure"] = self.failure
        return out


def _latency_json(by_name: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"p50": round(1000 * quantile(x, 0.5), 1), "p99": round(1000 * quantile(x, 0.99), 1), "n": len(x)}
        for name, x in by_name.items()
        if x
    }


def _rep_json(r: Rep) -> dict[str, Any]:
    lat = r.recorder.all_latencies_s()
    return {
        "variant": r.variant,
        "pair": r.pair,
        "workflows": r.workflows,
        "seconds": round(r.seconds, 3),
        "workflows_per_s": round(r.per_s, 3),
        "activities_per_s": round(r.activities_per_s, 1),
        "update_p50_ms": round(1000 * quantile(lat, 0.5), 1) if lat else None,
        "update_p99_ms": round(1000 * quantile(lat, 0.99), 1) if lat else None,
        "updates_sent": sum(r.recorder.updates_sent.values()),
        "updates_rejected": r.actions.by_kind[actions.UPDATE_REJECTED],
        "signals_sent": r.recorder.signals_sent,
        "queries_sent": r.recorder.queries_sent,
        "actions_per_workflow": _per_workflow(r.actions, r.workflows),
        "cpu_s": {k: round(v, 2) for k, v in r.cpu_s.items()},
        "worker_cpu_ms_per_workflow": round(1000 * r.worker_cpu_s / r.workflows, 1),
        "machine_busy_cpu_s": round(r.machine_busy_s, 2),
        "machine_capacity_cpu_s": round(r.machine_total_s, 2),
        "worker_rss_peak_mb": round(r.worker_rss_peak / MIB, 1),
        "worker_counters": {k: round(v) for k, v in r.worker_counters.items()},
    }


def _intake_json(i: Intake) -> dict[str, Any]:
    return {
        "variant": i.variant,
        "count": i.count,
        "seconds": round(i.seconds, 2),
        "starts_answered_s": None if i.starts_answered_s is None else round(i.starts_answered_s, 2),
        "half_ready_s": round(quantile(i.marks_s, 0.5), 2),
        "p90_ready_s": round(quantile(i.marks_s, 0.9), 2),
        "worker_rss_before_mb": round(i.rss_before / MIB, 1),
        "worker_rss_parked_mb": round(i.rss_parked / MIB, 1),
        "worker_rss_per_cached_kb": None
        if math.isnan(i.rss_per_cached_bytes)
        else round(i.rss_per_cached_bytes / 1024, 1),
        "open_after": i.open_after,
        "worker_counters": {k: round(v) for k, v in i.worker_counters.items()},
        "cpu_s": {k: round(v, 2) for k, v in i.cpu_s.items()},
        "machine_busy_cpu_s": round(i.machine_busy_s, 2),
        "machine_capacity_cpu_s": round(i.machine_total_s, 2),
    }


def print_report(res: Results) -> None:
    """The figures as a person reads them: stack, low load, pairs, actions, intake, targets."""
    a = res.args
    print(f"lifecycle benchmark (issue 12) on {os.cpu_count()} CPUs")
    print(f"  load average before {res.load_before}, after {res.load_after}")
    print(f"  stack: {res.server}")
    if res.plan:
        print(f"  bare plan, read from a PAID exchange's history: {res.plan.describe()}")
    print("  worker RSS idle after warm-up: " + ", ".join(f"{k} {v / MIB:,.0f} MB" for k, v in res.idle_rss.items()))
    if res.probe:
        _print_latencies(f"low load: {a.probe} exchanges to PAID one at a time, then {a.probe} bare runs", res.probe)
    if res.reps:
        _print_pairs(res)
        _print_latencies("under load: the runs above", res.reps)
        _print_actions(res)
    if res.intake:
        _print_intake(res)
    print()
    for target, met, measured in res.targets():
        print(f"target {target}: {'MET' if met else 'NOT MET'} ({measured})")


def _print_latencies(title: str, reps: list[Rep]) -> None:
    print()
    print(f"{title}: update round trips, ms")
    print(f"  {'update':<18}{'ours n':>8}{'p50':>7}{'p99':>7}{'bare n':>9}{'p50':>7}{'p99':>7}")
    ours, bare = _by_name([r for r in reps if r.variant == "ours"]), _by_name([r for r in reps if r.variant == "bare"])
    for name, values in ours.items():
        other = bare.get(name, [])
        print(
            f"  {name:<18}{len(values):>8}{_ms(quantile(values, 0.5)):>7}{_ms(quantile(values, 0.99)):>7}"
            f"{len(other):>9}{_ms(quantile(other, 0.5)):>7}{_ms(quantile(other, 0.99)):>7}"
        )


def _print_pairs(res: Results) -> None:
    print()
    print(
        f"lifecycle: {res.args.exchanges} workflows at once per run, {res.args.pairs} pairs interleaved "
        "(ours: Exchange to PAID; bare: its plan)"
    )
    print(
        f"  {'run':<8}{'wall s':>7}{'wf/s':>7}{'act/s':>7}{'upd p50':>8}{'p99':>6}{'actions':>8}{'rejected':>9}"
        f"{'worker CPU':>11}{'ms/wf':>6}{'RSS peak':>9}{'machine':>8}"
    )
    for r in res.reps:
        lat = r.recorder.all_latencies_s()
        busy = r.machine_busy_s / r.machine_total_s if r.machine_total_s else math.nan
        rejected = r.actions.by_kind[actions.UPDATE_REJECTED]
        print(
            f"  {f'{r.variant} #{r.pair}':<8}{r.seconds:>7.1f}{r.per_s:>7.2f}{r.activities_per_s:>7.0f}"
            f"{_ms(quantile(lat, 0.5)):>8}{_ms(quantile(lat, 0.99)):>6}{r.actions.total / r.workflows:>8.1f}"
            f"{rejected:>9}{r.worker_cpu_s:>10.1f}s{1000 * r.worker_cpu_s / r.workflows:>6.0f}"
            f"{r.worker_rss_peak / MIB:>7.0f}MB{busy:>8.0%}"
        )
    print(
        f"  ratio ours/bare, median of pairs (min-max): exchanges/s {_x(res.ratios(lambda r: r.per_s))}, "
        f"activities/s {_x(res.ratios(lambda r: r.activities_per_s))}, "
        f"worker CPU per workflow {_x(res.ratios(lambda r: r.worker_cpu_s / r.workflows))}"
    )
    for variant in ("ours", "bare"):
        runs = res.of(variant)
        cpu: Counter[str] = Counter()
        for r in runs:
            cpu.update(r.cpu_s)
        n = sum(r.workflows for r in runs)
        print(f"  CPU per {variant} workflow, ms: {_cpu_text(cpu, n)}")
    for variant in ("ours", "bare"):
        runs = res.of(variant)
        n = sum(r.workflows for r in runs)
        print(f"  {variant} worker per workflow: {_cache_text(runs[0].worker_counters.keys(), runs, n)}")
    print(f"  {_machine_text(res.reps)}")


def _cpu_text(cpu: Counter[str] | dict[str, float], n: int) -> str:
    """CPU time by part of the stack, in ms per workflow, the largest first (parts under 1 ms left out)."""
    ordered = sorted(cpu.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {1000 * v / n:,.0f}" for k, v in ordered if 1000 * v / n >= 1)


def _machine_text(runs: Sequence[Rep | Intake]) -> str:
    """How busy the whole machine was over these runs, and how much of it was other people's processes."""
    busy_s = sum(r.machine_busy_s for r in runs)
    total_s = sum(r.machine_total_s for r in runs)
    ours_s = sum(sum(r.cpu_s.values()) for r in runs)
    others = max(0.0, busy_s - ours_s)
    return (
        f"the machine was busy {busy_s / total_s:.0%} of {total_s:,.0f} CPU-s, other people's processes "
        f"{others / total_s:.0%}"
    )


def _cache_text(keys: Iterable[str], runs: Sequence[Rep | Intake], n: int) -> str:
    """The SDK's worker counters over these runs, per workflow (the cache size as it was after the last)."""
    parts = []
    for key in keys:
        if key == "cached now":
            parts.append(f"{runs[-1].worker_counters[key]:,.0f} cached after")
        else:
            parts.append(f"{key} {sum(r.worker_counters.get(key, 0.0) for r in runs) / n:,.1f}")
    return ", ".join(parts)


def _print_actions(res: Results) -> None:
    paid, per = res.paid_actions()
    n = len(per)
    queries = sum(r.recorder.queries_sent for r in res.of("ours"))
    print()
    print(f"billable actions per PAID exchange, from {n} histories (the rule: bench/actions.py, docs/performance.md)")
    print(f"  total {paid.total / n:.1f} (min {min(per)}, max {max(per)}); queries sent by the actors {queries}")
    print(f"  by kind: {_per(paid.by_kind, n)}")
    print(f"    of the marker tasks, {paid.patch_only_marker_tasks / n:.1f} recorded only patch markers")
    print(f"  by activity: {_per(paid.by_activity, n)}")
    if paid.local_activities:
        print(f"  local activities (billed in the marker tasks): {_per(paid.local_activities, n)}")
    print(f"  updates: {_per(paid.updates, n)}; signals: {_per(paid.signals, n)}")
    bare = res.of("bare")
    if bare:
        b, nb = sum((r.actions for r in bare), ActionCount(runs=0)), sum(r.workflows for r in bare)
        print(f"  a bare run, for comparison: {b.total / nb:.1f} ({_per(b.by_kind, nb)})")


def _print_intake(res: Results) -> None:
    print()
    print(
        "intake: applications started in a burst, until each waits for its first decision "
        "(ours: in REVIEW, reviewers assigned; bare: at its first message)"
    )
    names = {"intake": "ours", "bare": "bare", "park": "park"}
    for i in res.intake:
        answered = "" if i.starts_answered_s is None else f"starts answered in {i.starts_answered_s:.1f} s, "
        print(
            f"  {names[i.variant]:<5}{i.count:>7,} in {i.seconds:>6.1f} s ({answered}half waiting at "
            f"{quantile(i.marks_s, 0.5):.1f} s, 90% at {quantile(i.marks_s, 0.9):.1f} s)"
        )
        per = i.rss_per_cached_bytes
        per_text = "" if math.isnan(per) else f": {per / 1024:,.0f} kB per workflow cached (cache {WORKER_CACHE:,})"
        print(
            f"  {'':<5}worker RSS {i.rss_before / MIB:,.0f} MB before, {i.rss_parked / MIB:,.0f} MB with "
            f"{i.open_after:,} open{per_text}"
        )
        if i.worker_counters:
            print(f"  {'':<5}worker per workflow: {_cache_text(i.worker_counters.keys(), [i], i.count)}")
        if i.cpu_s and i.machine_total_s:
            print(f"  {'':<5}CPU per workflow, ms: {_cpu_text(i.cpu_s, i.count)}; {_machine_text([i])}")
    ours, bare = res.intake_of("intake"), res.intake_of("bare")
    if ours and bare:
        print(f"  ratio ours/bare: {ours.seconds / bare.seconds:.2f}x")
