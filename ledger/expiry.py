"""Who is due for erasure because their retention periods have ended (issue 16, item 2; `cx privacy expire`).

A person may be kept only as long as the longest period of the data they appear in (schemas/retention.toml):
someone who took part in exchanges, as applicant, signatory, reviewer or finance, is in their applications and
audit trail, kept for `applications`/`audit_trail` (10 years) after the *last* of those exchanges closed; a
reviewer or officer who was never assigned is contact data only (`reviewer_contact_data`, 1 year after their
record last changed). Nobody party to an open exchange is due, however old their other exchanges are.

`due_for_erasure` lists them with the category and day their period ended; `cx privacy expire` erases each
(clients/erasure.py), the reason naming the category. Pseudonyms (`psn_...`, already erased) and the engine's
own actor are never listed.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from ledger.store import DbConnection
from schemas.retention import Category, RetentionSchedule
from schemas.stages import SYSTEM_ACTOR, TERMINAL_STAGES

# A limit on everything: one run erases at most this many people; the next run takes the rest.
MAX_DUE = 1000

_PARTIES_SQL = """
WITH parts AS (
    SELECT submitted_by AS person, application_id FROM exchanges
    UNION SELECT actor_id, application_id FROM audit_events WHERE actor_id <> $2
    UNION SELECT reviewer_id, application_id FROM review_assignments
    UNION SELECT confirmed_by, application_id FROM payment_orders WHERE confirmed_by IS NOT NULL
    UNION SELECT uploaded_by, application_id FROM evidence_files
)
SELECT p.person, bool_or(e.stage <> ALL($1::text[])) AS open, max(e.updated_at) AS last_closed_at
  FROM parts p JOIN exchanges e USING (application_id)
 WHERE p.person !~ '^psn_[0-9a-f]{32}$'
 GROUP BY p.person"""

_UNASSIGNED_REVIEWERS_SQL = """
SELECT r.reviewer_id AS person, r.updated_at FROM reviewers r
 WHERE r.reviewer_id !~ '^psn_[0-9a-f]{32}$'
   AND NOT EXISTS (SELECT 1 FROM review_assignments a WHERE a.reviewer_id = r.reviewer_id)"""


class DuePerson(BaseModel):
    """A person whose every period has ended: by which category's period, and since which day."""

    person: str
    category: Category
    expired_on: date


async def due_for_erasure(conn: DbConnection, schedule: RetentionSchedule, today: date) -> list[DuePerson]:
    """The people whose retention has ended by `today`, the longest-expired first (at most MAX_DUE)."""
    terminal = [stage.value for stage in TERMINAL_STAGES]
    record = {category: schedule.categories[category] for category in (Category.APPLICATIONS, Category.AUDIT_TRAIL)}
    due: list[DuePerson] = []
    for row in await conn.fetch(_PARTIES_SQL, terminal, SYSTEM_ACTOR):
        if row["open"]:
            continue
        start = _day(row["last_closed_at"])
        # Kept while any of the record's categories is: the later of their ends.
        category, expired_on = max(((c, rule.expires_on(start)) for c, rule in record.items()), key=lambda x: x[1])
        if expired_on <= today:
            due.append(DuePerson(person=row["person"], category=category, expired_on=expired_on))
    contact = schedule.categories[Category.REVIEWER_CONTACT_DATA]
    for row in await conn.fetch(_UNASSIGNED_REVIEWERS_SQL):
        expired_on = contact.expires_on(_day(row["updated_at"]))
        if expired_on <= today:
            due.append(DuePerson(person=row["person"], category=Category.REVIEWER_CONTACT_DATA, expired_on=expired_on))
    due.sort(key=lambda d: (d.expired_on, d.person))
    return due[:MAX_DUE]


def _day(instant: datetime) -> date:
    return instant.date()
