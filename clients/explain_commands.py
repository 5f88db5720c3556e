"""`cx explain`: why an exchange was decided as it was, from the append-only audit trail.

Every screening and pricing decision is recorded with the policy version, a digest of its input and
its reasons (activities/screening.py, activities/pricing.py, projected by the workflow), so an
explanation years later reads the record instead of recomputing with today's rules.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console

from workers.runtime import StackNotFound, resolve_database_url
from workers.settings import Settings

DECISION_EVENTS = ("screening_decided", "priced", "funds_held", "hold_voided", "payment_ordered", "stage_entered")
console = Console()
errors = Console(stderr=True)


async def load_explanation(database_url: str, application_id: str) -> dict[str, Any] | None:
    conn = await asyncpg.connect(database_url)
    try:
        exchange = await conn.fetchrow(
            "SELECT application_id, stage, partnership_id, policy_version, grant_cents, held_cents, paid_cents"
            " FROM exchanges WHERE application_id = $1",
            application_id,
        )
        if exchange is None:
            return None
        events = await conn.fetch(
            """SELECT sequence, event, stage, actor_id, reason, policy_version, details, at FROM audit_events
               WHERE application_id = $1 AND event = ANY($2::text[]) ORDER BY sequence""",
            application_id,
            list(DECISION_EVENTS),
        )
    finally:
        await conn.close()
    return {
        "exchange": dict(exchange),
        "decisions": [
            {**dict(e), "details": json.loads(e["details"]), "at": e["at"].isoformat()}
            for e in events
            if e["event"] != "stage_entered" or e["reason"]
        ],
    }


def explain(
    application_id: Annotated[str, typer.Argument(help="the application id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the explanation as JSON")] = False,
) -> None:
    """Explain an exchange's decisions: rules, policy version, input digests, amounts and reasons.

    Example: cx explain demo-04
    """
    try:
        database_url = resolve_database_url(Settings.from_env())
        explanation = asyncio.run(load_explanation(database_url, application_id))
    except (StackNotFound, OSError, asyncpg.PostgresError) as error:
        errors.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    if explanation is None:
        errors.print(f"[red]error:[/red] application_id {application_id!r}: no such exchange", highlight=False)
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(explanation, indent=2, default=str) + "\n")
        return
    exchange = explanation["exchange"]
    console.print(
        f"[bold]{exchange['application_id']}[/bold]: stage {exchange['stage']}, partnership "
        f"{exchange['partnership_id']}, policy {exchange['policy_version']}"
    )
    for decision in explanation["decisions"]:
        console.print(
            f"\n[bold]{decision['event']}[/bold] at {decision['at']} by {decision['actor_id']}"
            f" (policy {decision['policy_version']})"
        )
        if decision["reason"]:
            console.print(f"  {decision['reason']}")
        for key, value in decision["details"].items():
            if key == "failures":
                for failure in value:
                    console.print(f"  {failure['rule']} ({failure['field']}): {failure['message']}")
            elif isinstance(value, list):
                for line in value:
                    console.print(f"  {key}: {line}")
            else:
                console.print(f"  {key}: {value}")
