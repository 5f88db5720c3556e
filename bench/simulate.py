"""Benchmark of the programme simulation (issue 17, item 1): the full two-year run and its time. Not a test.

    .venv/bin/python -m bench.simulate [--applications 1500] [--baseline 150] [--seed 1] [--json]

Runs `cx simulate programme`'s engine (workers/simulation/run.py) twice in this process, one after the other:
a small baseline (`--baseline` applications, the same model otherwise) and the full run (`--applications`),
each with its own time-skipping server and scratch database on DATABASE_URL's Postgres (or an embedded one).
Prints both wall times, applications per second and the ratio of the full run's time per application to the
baseline's (1.0 means the run scales linearly). Target: the full run under 300 s on a 2-core machine. Exit code
0 when met, 2 when not, 1 when a run failed or its ledger check was not clean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from schemas.policy import load_policy
from schemas.simulation import load_behaviour
from workers.simulation.command import embedded_or, quiet_engine_logs
from workers.simulation.figures import Figures
from workers.simulation.run import run_programme

TARGET_S = 300.0


async def _one(admin_dsn: str, applications: int, seed: int) -> Figures:
    behaviour = load_behaviour(overrides={"programme": {"applications": applications}})
    figures, _ = await run_programme(behaviour, seed=seed, policy=load_policy(), admin_dsn=admin_dsn)
    return figures


async def bench(admin_dsn: str, args: argparse.Namespace) -> dict[str, object]:
    baseline = await _one(admin_dsn, args.baseline, args.seed)
    full = await _one(admin_dsn, args.applications, args.seed)
    per_app = {
        "baseline": baseline.elapsed_s / baseline.applications_planned,
        "full": full.elapsed_s / full.applications_planned,
    }
    return {
        "baseline": {"applications": baseline.applications_planned, "elapsed_s": baseline.elapsed_s},
        "full": {
            "applications": full.applications_planned,
            "elapsed_s": full.elapsed_s,
            "applications_per_s": round(full.applications_planned / full.elapsed_s, 2),
            "paid": full.total.paid,
            "paid_cents": full.total.paid_cents,
            "ledger_clean": full.ledger.ok and full.ledger.paid_matches_payouts,
        },
        "time_per_application_ratio": round(per_app["full"] / per_app["baseline"], 2),
        "target_s": TARGET_S,
        "met": full.elapsed_s < TARGET_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--applications", type=int, default=1500)
    parser.add_argument("--baseline", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_engine_logs()
    with embedded_or(os.environ.get("DATABASE_URL")) as admin_dsn:  # bench/ reads its own environment, as lifecycle
        result = asyncio.run(bench(admin_dsn, args))
    if args.json:
        print(json.dumps(result))
    else:
        full, baseline = result["full"], result["baseline"]
        assert isinstance(full, dict)
        assert isinstance(baseline, dict)
        print(
            f"baseline: {baseline['applications']} applications in {baseline['elapsed_s']} s\n"
            f"full:     {full['applications']} applications in {full['elapsed_s']} s "
            f"({full['applications_per_s']} applications/s; {full['paid']} paid, ledger "
            f"{'clean' if full['ledger_clean'] else 'NOT CLEAN'})\n"
            f"time per application, full / baseline: {result['time_per_application_ratio']}x\n"
            f"target: full run under {TARGET_S:.0f} s: {'met' if result['met'] else 'NOT met'}"
        )
    full = result["full"]
    assert isinstance(full, dict)
    if not full["ledger_clean"]:
        return 1
    return 0 if result["met"] else 2


if __name__ == "__main__":
    sys.exit(main())
