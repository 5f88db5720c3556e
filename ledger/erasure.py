"""Erasing a person while the money trail stays (GDPR art. 17 with the financial-records exemption, art. 17(3)(b)).

Issue 16, item 2 (docs/adr/0025-erasure-by-crypto-shredding.md). `erase_person` does, in one transaction:

1. refuses while the person is party to an open exchange (the data is needed to finish it): as submitter,
   as an actor in its audit trail, or as a reviewer on it;
2. destroys the person's data keys (ledger/persons.py): every value sealed under them (a review's comment,
   a reason, an application's goals, a reviewer's name) reads as "erased" in every table and every backup;
3. pseudonymises the identifiers: every actor column that held one of the person's ids (audit trail,
   submitter, reviewer, uploader, confirmer) holds the person's ref instead, so "a reviewer approved, on this
   day, under this policy" stays provable while nobody can tell who; the lookup rows that linked the ids to
   the ref are deleted. Text written before sealing existed (or by a deployment without keys) is overwritten
   with "erased" in the same step. The audit trail accepts this one UPDATE only inside this transaction, and
   only of the actor, reason and details columns (its trigger, migration 0015);
4. deletes what only exists for a session (web sessions, stored API answers, rate counters) and the
   person's own notification rows.

It never touches the ledger, amounts, dates, stages, partnerships, organisations or payment references:
`cx ledger check` and the KPIs read nothing it changes. A second erasure of the same person
changes nothing: nothing names the ids any more, and nothing links them to the ref (by design,
the engine forgets who the ref was), so it answers `already_erased` with no ref. The caller deletes the
Temporal histories of the returned exchanges afterwards (clients/erasure.py): they are outside Postgres.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from ledger.persons import ERASED, SEAL_PREFIX, find_person, person_ref
from ledger.store import DbConnection
from schemas.stages import TERMINAL_STAGES


class PersonStillParty(Exception):
    """The person is party to exchanges that are still open: erasing now would break them."""

    def __init__(self, application_ids: Sequence[str]) -> None:
        shown = ", ".join(application_ids[:10]) + (" ..." if len(application_ids) > 10 else "")
        super().__init__(
            f"party to {len(application_ids)} open exchange(s) ({shown}): erasure waits until they close "
            "(or are cancelled)"
        )
        self.application_ids = list(application_ids)


class ErasureResult(BaseModel):
    """What the erasure did (or, for a repeat, what the first one did)."""

    person_ref: str | None = Field(description="the pseudonym left in the person's rows; None for a repeat")
    erased_at: datetime | None
    erased_by: str
    reason: str
    already_erased: bool
    keys_destroyed: int
    rows_pseudonymised: int
    application_ids: list[str]


_OPEN_PARTY_SQL = """
SELECT DISTINCT e.application_id FROM exchanges e
 WHERE e.stage <> ALL($2::text[])
   AND (e.submitted_by = ANY($1::text[])
        OR EXISTS (SELECT 1 FROM audit_events a
                    WHERE a.application_id = e.application_id AND a.actor_id = ANY($1::text[]))
        OR EXISTS (SELECT 1 FROM review_assignments r
                    WHERE r.application_id = e.application_id AND r.reviewer_id = ANY($1::text[])))
 ORDER BY 1"""

_TOUCHED_SQL = """
SELECT application_id FROM exchanges WHERE submitted_by = ANY($1::text[])
UNION SELECT application_id FROM audit_events WHERE actor_id = ANY($1::text[])
UNION SELECT application_id FROM review_assignments WHERE reviewer_id = ANY($1::text[])
UNION SELECT application_id FROM evidence_files WHERE uploaded_by = ANY($1::text[])
UNION SELECT application_id FROM payment_orders WHERE confirmed_by = ANY($1::text[])
ORDER BY 1"""


async def erase_person(
    conn: DbConnection, identifiers: Sequence[str], addresses: Sequence[str], officer: str, reason: str
) -> ErasureResult:
    """Erase the person known by `identifiers` (actor ids; addresses are ids too) in one transaction."""
    ids = sorted({*identifiers, *addresses})
    async with conn.transaction():
        refs = [ref for ref in [await find_person(conn, i) for i in ids] if ref is not None]
        still_open = [r["application_id"] for r in await conn.fetch(_OPEN_PARTY_SQL, ids, _terminal())]
        if still_open:
            raise PersonStillParty(still_open)
        touched = [r["application_id"] for r in await conn.fetch(_TOUCHED_SQL, ids)]
        if not refs and not touched:
            # Nothing links these ids to anyone: erased before (its lookup rows went with it, on purpose: the
            # engine no longer knows who the ref was), or never known. Nothing to do, nothing changed.
            return ErasureResult(
                person_ref=None, erased_at=None, erased_by=officer, reason=reason, already_erased=True,
                keys_destroyed=0, rows_pseudonymised=0, application_ids=[],
            )  # fmt: skip
        ref = refs[0] if refs else await person_ref(conn, ids[0])
        everyone = sorted({ref, *refs})
        destroyed = await conn.execute(
            "UPDATE person_keys SET wrapped_key = NULL, destroyed_at = now() "
            "WHERE person_ref = ANY($1::text[]) AND destroyed_at IS NULL",
            everyone,
        )
        erased_at = await conn.fetchval(
            "UPDATE persons SET erased_at = now(), erased_by = $2, erasure_reason = $3 "
            "WHERE person_ref = ANY($1::text[]) RETURNING erased_at",
            everyone,
            officer,
            reason,
        )
        await conn.execute("DELETE FROM person_identifiers WHERE person_ref = ANY($1::text[])", everyone)
        changed = await _pseudonymise(conn, ids, [a.lower() for a in addresses], ref)
    return ErasureResult(
        person_ref=ref,
        erased_at=erased_at,
        erased_by=officer,
        reason=reason,
        already_erased=False,
        keys_destroyed=int(destroyed.split()[-1]),
        rows_pseudonymised=changed,
        application_ids=touched,
    )


def _terminal() -> list[str]:
    return [stage.value for stage in TERMINAL_STAGES]


# $1 the ids, $2 the ref, $3 the word "erased". Unsealed text (written before sealing, or without keys) is
# overwritten; sealed text stays as it is: its key is gone.
_PSEUDONYMISE = (
    """UPDATE exchanges SET submitted_by = $2,
              application = application || jsonb_build_object('submitted_by', $2::text)
                  || CASE WHEN application->>'goals' LIKE 'cx1:%' OR coalesce(application->>'goals', '') = ''
                          THEN '{}'::jsonb ELSE jsonb_build_object('goals', $3::text) END
        WHERE submitted_by = ANY($1::text[])""",
    """UPDATE reviewers SET reviewer_id = $2, name = CASE WHEN name LIKE 'cx1:%' THEN name ELSE $3 END
        WHERE reviewer_id = ANY($1::text[])""",
    "UPDATE evidence_files SET uploaded_by = $2, name = $3 WHERE uploaded_by = ANY($1::text[])",
)
# $1 the ids: rows that exist only for a session or a retry (they expire within a day anyway).
_FORGET = (
    "DELETE FROM web_sessions WHERE subject = ANY($1::text[])",
    "DELETE FROM idempotency_keys WHERE principal = ANY($1::text[])",
    "DELETE FROM api_rate_counts WHERE bucket = ANY(ARRAY(SELECT 'write:' || i FROM unnest($1::text[]) AS i))",
)


def _count(status: str) -> int:
    return int(status.split()[-1])


async def _pseudonymise(conn: DbConnection, ids: list[str], addresses: list[str], ref: str) -> int:
    """Every identifier replaced by the ref, unsealed personal text by "erased"; the number of rows changed."""
    changed = sum([_count(await conn.execute(statement, ids, ref, ERASED)) for statement in _PSEUDONYMISE])
    changed += _count(
        await conn.execute("UPDATE payment_orders SET confirmed_by = $2 WHERE confirmed_by = ANY($1::text[])", ids, ref)
    )
    changed += sum([_count(await conn.execute(statement, ids)) for statement in _FORGET])
    if addresses:
        status = await conn.execute(
            "DELETE FROM outbox WHERE channel = 'email' AND lower(destination) = ANY($1::text[])", addresses
        )
        changed += _count(status)
    return changed + await _pseudonymise_audit(conn, ids, ref)


async def _pseudonymise_audit(conn: DbConnection, ids: list[str], ref: str) -> int:
    """The audit rows that name the person: as actor, or inside a system row's reason or details (the
    reviewers assigned, reminded, or who confirmed a payment)."""
    await conn.execute("SELECT set_config('cx.erasure', $1, true)", ref)
    rows = await conn.fetch(
        """SELECT id, actor_id, reason, details::text AS details FROM audit_events
            WHERE actor_id = ANY($1::text[]) OR EXISTS (
                  SELECT 1 FROM unnest($1::text[]) AS named (identifier)
                   WHERE strpos(details::text, to_jsonb(named.identifier)::text) > 0
                      OR strpos(reason, named.identifier) > 0)""",
        ids,
    )
    pattern = re.compile(
        "|".join(rf"(?<![\w.@-]){re.escape(i)}(?![\w.@-])" for i in sorted(ids, key=len, reverse=True))
    )
    changed = 0
    for row in rows:
        own = row["actor_id"] in ids
        reason = row["reason"]
        # The person's own words stored before sealing are overwritten; anyone's text naming their id is edited.
        unsealed_own = own and reason and not reason.startswith(SEAL_PREFIX)
        reason = ERASED if unsealed_own else pattern.sub(ref, reason)
        details = json.dumps(_replace_strings(json.loads(row["details"]), set(ids), ref))
        status = await conn.execute(
            "UPDATE audit_events SET actor_id = $2, reason = $3, details = $4::jsonb WHERE id = $1",
            row["id"],
            ref if own else row["actor_id"],
            reason,
            details,
        )
        changed += _count(status)
    await conn.execute("SELECT set_config('cx.erasure', '', true)")
    return changed


def _replace_strings(value: object, ids: set[str], ref: str) -> object:
    """`value` with every string equal to one of `ids` replaced by `ref`, at any depth."""
    if isinstance(value, str):
        return ref if value in ids else value
    if isinstance(value, dict):
        return {k: _replace_strings(v, ids, ref) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, ids, ref) for v in value]
    return value
