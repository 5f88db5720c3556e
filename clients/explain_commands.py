"""`cx explain`: why an exchange was decided as it was, from the append-only audit trail.

Every screening and pricing decision is recorded with the policy version, a digest of its input and
its reasons (rules/screening.py, rules/pricing.py, projected by the workflow), and every review
decision with who made it and why (each review with its recommendation and scores, the board's decision,
an officer's override, requests for changes and their answers, reopenings). An explanation years later
reads that record instead of recomputing with today's rules.

R7 (an organisation visits once) is explained with its evidence. Read early at SCREENING, the
`screening_decided` event carries `check_visit`'s answer under `r7` (the other application, when it
claimed the visit, its stage then). Refused at FUNDING by the atomic claim, the refusal is the reason of
the INELIGIBLE transition. Either way the explanation also lists the visitor organisation's visit claims
(`organisation_visits`: who claimed when, released or not, and the claimant's stage now), the facts the
rule was decided on.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape

from clients.config import client_config
from ledger.persons import reveal
from ledger.pool import ServerUnreachable
from ledger.store import DbConnection
from schemas.events import EventName

# The audit events an explanation shows, as the Exchange workflow records them (schemas/events.py).
SCREENING_EVENTS = (EventName.SCREENING_DECIDED,)
REVIEW_EVENTS = (
    EventName.REVIEW_SUBMITTED,
    EventName.CHANGES_REQUESTED,
    EventName.APPLICATION_AMENDED,
    EventName.REVIEW_OVERRIDDEN,
    EventName.REVIEW_DECIDED,
    EventName.REVIEW_REOPENED,
)
FUNDING_EVENTS = (EventName.PRICED, EventName.FUNDS_HELD, EventName.HOLD_VOIDED, EventName.PAYMENT_ORDERED)
DECISION_EVENTS = (*SCREENING_EVENTS, *REVIEW_EVENTS, *FUNDING_EVENTS, EventName.STAGE_ENTERED)
# The prefix the workflow gives a terminal reason made of rule failures: "R7 (visitor.organisation_id): ...".
_R7_REASON_PREFIX = "R7 ("
# Details that carry the decision itself print before the supporting figures.
_FIRST_KEYS = ("approved", "decision", "recommendation", "scores", "failures", "r7")
console = Console()
errors = Console(stderr=True)


async def load_explanation(database_url: str, application_id: str) -> dict[str, Any] | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await explanation(conn, application_id)
    finally:
        await conn.close()


async def explanation(conn: DbConnection, application_id: str) -> dict[str, Any] | None:
    """The explanation as a JSON-ready document, or None for no such exchange (also `GET .../explanation`)."""
    exchange = await conn.fetchrow(
        "SELECT application_id, stage, partnership_id, visitor_org_id, policy_version, grant_cents, held_cents,"
        " paid_cents FROM exchanges WHERE application_id = $1",
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
    claims = await conn.fetch(
        """SELECT v.application_id, v.claimed_at, v.released_at, v.release_reason, e.stage
             FROM organisation_visits v LEFT JOIN exchanges e ON e.application_id = v.application_id
            WHERE v.organisation_id = $1 ORDER BY v.claimed_at, v.id""",
        exchange["visitor_org_id"],
    )
    decisions = await reveal(
        conn,
        [
            {**dict(e), "details": json.loads(e["details"]), "at": e["at"].isoformat()}
            for e in events
            if e["event"] != EventName.STAGE_ENTERED or e["reason"]
        ],
    )
    return {
        "exchange": dict(exchange),
        "decisions": decisions,
        # R7's facts: every claim of the visitor organisation's one visit, this exchange's own included.
        "visit_claims": [
            {
                "application_id": c["application_id"],
                "claimed_at": c["claimed_at"].isoformat(),
                "released_at": c["released_at"].isoformat() if c["released_at"] else None,
                "release_reason": c["release_reason"],
                "stage_now": c["stage"],
            }
            for c in claims
        ],
    }


def refused_under_r7(decisions: Iterable[dict[str, Any]]) -> bool:
    """Whether R7 refused the exchange, early at SCREENING or by the claim at FUNDING."""
    for decision in decisions:
        details = decision["details"]
        if any(failure.get("rule") == "R7" for failure in details.get("failures", [])):
            return True
        if decision["event"] == EventName.STAGE_ENTERED and decision["reason"].startswith(_R7_REASON_PREFIX):
            return True
    return False


def r7_evidence_line(check: dict[str, Any]) -> str:
    """`check_visit`'s answer as recorded at SCREENING, in one sentence."""
    if check.get("visit") == "free" or not check.get("held_by_application_id"):
        return "R7 check: the visit was free (no other exchange held a claim)"
    how = "used by" if check.get("visit") == "used" else "held by"
    claimed = _instant(check.get("claimed_at")) or "an unrecorded time"
    stage = check.get("holder_stage") or "not on record"
    return (
        f"R7 check: the visit of {check.get('organisation_id')} was {how} application "
        f"{check['held_by_application_id']}, claimed at {claimed}; its stage then: {stage}"
    )


def _instant(value: object) -> str | None:
    """A recorded instant as the rest of the explanation prints them (pydantic's JSON writes UTC as "Z")."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        return value


def _claim_line(claim: dict[str, Any], application_id: str) -> str:
    whose = " (this exchange)" if claim["application_id"] == application_id else ""
    released = (
        f"released at {claim['released_at']} ({claim['release_reason']})" if claim["released_at"] else "not released"
    )
    return (
        f"  {claim['application_id']}{whose}: claimed at {claim['claimed_at']}, {released}; "
        f"stage now {claim['stage_now'] or 'not on record'}"
    )


def _ordered(details: dict[str, Any]) -> list[tuple[str, Any]]:
    # Postgres' jsonb keeps no key order, so the details print in a fixed one: the decision first.
    return sorted(
        details.items(),
        key=lambda item: (_FIRST_KEYS.index(item[0]) if item[0] in _FIRST_KEYS else len(_FIRST_KEYS), item[0]),
    )


def _title(decision: dict[str, Any]) -> str:
    # A transition says which stage it entered; every other event happened in the stage it names.
    return (
        f"{decision['event']} {decision['stage']}"
        if decision["event"] == EventName.STAGE_ENTERED
        else decision["event"]
    )


def _detail_lines(key: str, value: Any) -> list[str]:
    if key == "failures":
        return [f"{failure['rule']} ({failure['field']}): {failure['message']}" for failure in value]
    if key == "r7" and isinstance(value, dict):
        return [r7_evidence_line(value)]
    if key == "scores" and isinstance(value, dict):
        return ["scores: " + (", ".join(f"{criterion} {score}" for criterion, score in value.items()) or "none")]
    if key == "approved" and isinstance(value, bool):
        return ["decision: " + ("approved" if value else "rejected")]
    if isinstance(value, list):
        return [f"{key}: {line}" for line in value] or [f"{key}: none"]
    return [f"{key}: {value}"]


def explain(
    ctx: typer.Context,
    application_id: Annotated[str, typer.Argument(help="the application id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the explanation as JSON")] = False,
) -> None:
    """Explain an exchange's decisions: screening (with R7's evidence), reviews, pricing, policy version,
    input digests, amounts and reasons.

    Example: cx explain demo-04
    """
    try:
        database_url = client_config(ctx).database_url()
        explanation = asyncio.run(load_explanation(database_url, application_id))
    except (ServerUnreachable, OSError, asyncpg.PostgresError) as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    if explanation is None:
        errors.print(
            f"[red]error:[/red] application_id {escape(repr(application_id))}: no such exchange", highlight=False
        )
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(explanation, indent=2, default=str) + "\n")
        return
    exchange = explanation["exchange"]
    # Reasons, comments and names come from people: printed as text, never read as rich markup.
    say = console.print
    say(
        f"[bold]{escape(exchange['application_id'])}[/bold]: stage {exchange['stage']}, partnership "
        f"{escape(exchange['partnership_id'])}, policy {exchange['policy_version']}",
        highlight=False,
    )
    for decision in explanation["decisions"]:
        say(
            f"\n[bold]{_title(decision)}[/bold] at {decision['at']} by {escape(decision['actor_id'])}"
            f" (policy {decision['policy_version']})",
            highlight=False,
        )
        if decision["reason"]:
            say(f"  {escape(decision['reason'])}", highlight=False)
        for key, value in _ordered(decision["details"]):
            for line in _detail_lines(key, value):
                say(f"  {escape(line)}", highlight=False)
    if refused_under_r7(explanation["decisions"]):
        say(
            f"\n[bold]R7 evidence[/bold]: visit claims of {escape(exchange['visitor_org_id'])} on record",
            highlight=False,
        )
        for claim in explanation["visit_claims"]:
            say(escape(_claim_line(claim, exchange["application_id"])), highlight=False)
        if not explanation["visit_claims"]:
            say("  none", highlight=False)
