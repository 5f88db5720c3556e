"""A person's data as one document (GDPR art. 15, issue 16 item 2): every row of the database that names them.

A person is known to the engine by identifiers, not by a record of their own: the actor ids they act under
(`submitted_by`, a reviewer's or officer's id, a signatory's `actor_id`, `uploaded_by`, `confirmed_by`, the
API subject of their web sessions and idempotency keys) and the e-mail addresses mail goes to (an actor id
may itself be an address). `export_person` reads, for all the identifiers given, each source in `SOURCES`
and returns the rows with their source table, oldest first within a source. It reads only: nothing is
written, so the same request gives the same document while nothing else changes.

What it leaves out, and why, is in the document itself (`not_included`): the evidence bytes (their records
are in; the files are fetched with `cx evidence`), Temporal histories (the same facts as the tables,
encrypted by the payload codec), logs, and the secrets of a live web session (a CSRF token or the hash of a
session id is a key to the session, not data about the person). docs/privacy.md lists where personal data
lives; `cx privacy export` and `GET /privacy/people/{person}/export` (officers only) print this document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, Field, JsonValue, StringConstraints, model_validator

from ledger.persons import reveal
from ledger.store import DbConnection
from schemas.retention import retention_schedule

# A limit on everything: a person named in more rows than this in one source is not one person (a service
# account, a bulk import's submitter); the export refuses rather than build a document nobody can read.
MAX_ROWS_PER_SOURCE = 10_000
MAX_IDENTIFIERS = 20

ActorIdentifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
EmailAddress = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
]

NOT_INCLUDED = (
    "evidence file contents: their records are listed (source evidence_files); an officer fetches the files "
    "from the evidence store by sha256",
    "Temporal workflow histories: they carry the same facts as the tables listed, encrypted by the payload "
    "codec (docs/adr/0022-payload-encryption.md), until the namespace's retention after the exchange closes",
    "process logs and traces: kept outside the engine (docs/privacy.md, 'Logs')",
    "web session secrets (CSRF token, session id hash) and stored API answers: keys to a session and copies "
    "of rows already listed",
)


class PersonIdentifiers(BaseModel):
    """Who the export is about: at least one actor id or e-mail address."""

    ids: list[ActorIdentifier] = Field(default_factory=list, max_length=MAX_IDENTIFIERS)
    emails: list[EmailAddress] = Field(default_factory=list, max_length=MAX_IDENTIFIERS)

    @model_validator(mode="after")
    def _someone(self) -> PersonIdentifiers:
        if not self.ids and not self.emails:
            raise ValueError("name the person: at least one actor id or e-mail address")
        return self

    def actor_ids(self) -> list[str]:
        """Every identifier an actor column may hold: the ids, and the addresses (an actor id may be one)."""
        return sorted({*self.ids, *self.emails})

    def addresses(self) -> list[str]:
        return sorted({email.lower() for email in self.emails})


class ExportItem(BaseModel):
    """One row that names the person, with the table it comes from."""

    source: str
    row: dict[str, JsonValue]


class PersonalDataExport(BaseModel):
    """A person's data as the engine holds it (art. 15), with what the document leaves out and why."""

    person: PersonIdentifiers
    generated_at: datetime
    retention_version: str = Field(description="the retention schedule in force (`cx privacy retention`)")
    items: list[ExportItem]
    not_included: list[str]


class ExportTooLarge(Exception):
    def __init__(self, source: str) -> None:
        super().__init__(
            f"more than {MAX_ROWS_PER_SOURCE} rows of {source} name this person: "
            "a shared account, not one person; export by a narrower identifier"
        )
        self.source = source


@dataclass(frozen=True)
class Source:
    """One table's rows naming the person: the columns exported (personal and context), and which match.

    `where` tests $1: the person's actor identifiers, or their lower-cased e-mail addresses (`by_address`)."""

    table: str
    columns: str
    where: str
    order_by: str
    by_address: bool = False


SOURCES: tuple[Source, ...] = (
    Source(
        "reviewers",
        "reviewer_id, name, organisation_id, country, partnership_id, roles, conflicts, unavailable_until, "
        "created_at, updated_at",
        "reviewer_id = ANY($1::text[])",
        "reviewer_id",
    ),
    Source(
        "review_assignments",
        "application_id, reviewer_id, assigned_at, due_at, status, updated_at",
        "reviewer_id = ANY($1::text[])",
        "assigned_at, application_id",
    ),
    Source(
        "exchanges",
        "application_id, partnership_id, host_partnership_id, visitor_org_id, host_org_id, host_country, "
        "start_date, end_date, stage, grant_cents, paid_cents, policy_version, submitted_by, updated_at, application",
        "submitted_by = ANY($1::text[])",
        "application_id",
    ),
    Source(
        "audit_events",
        "application_id, sequence, event, stage, actor_id, reason, policy_version, details, at",
        "actor_id = ANY($1::text[])",
        "at, application_id, sequence",
    ),
    # System rows that name a person in their details (a review reminder lists the silent reviewers, a PAID
    # row who confirmed): a JSON string equal to an identifier anywhere in `details`. This reads the whole
    # table, acceptable for a request that comes a few times a year, and misses nothing a key path would.
    Source(
        "audit_events",
        "application_id, sequence, event, stage, actor_id, reason, policy_version, details, at",
        "actor_id <> ALL($1::text[]) AND EXISTS (SELECT 1 FROM unnest($1::text[]) AS named (identifier) "
        "WHERE strpos(details::text, to_jsonb(named.identifier)::text) > 0)",
        "at, application_id, sequence",
    ),
    Source(
        "evidence_files",
        "sha256, application_id, name, kind, media_type, size_bytes, stored_at, uploaded_by",
        "uploaded_by = ANY($1::text[])",
        "stored_at, sha256",
    ),
    Source(
        "payment_orders",
        "payment_order_id, application_id, amount_cents, created_at, confirmed_at, payment_reference, confirmed_by",
        "confirmed_by = ANY($1::text[])",
        "created_at, payment_order_id",
    ),
    Source(
        "web_sessions",
        "subject, created_at, expires_at",
        "subject = ANY($1::text[])",
        "created_at",
    ),
    Source(
        "idempotency_keys",
        "principal, key, route, resource_id, status_code, created_at, completed_at",
        "principal = ANY($1::text[])",
        "created_at, key",
    ),
    # Only a principal's write counter names them (`write:<subject>`); `auth-failure:<address>` names a client
    # address, which no identifier given here is.
    Source(
        "api_rate_counts",
        "bucket, window_start, window_end, count",
        "bucket = ANY(ARRAY(SELECT 'write:' || named FROM unnest($1::text[]) AS named))",
        "window_start, bucket",
    ),
    Source(
        "outbox",
        "dedup_key, topic, channel, destination, payload, created_at, delivered_at, dead_at",
        "channel = 'email' AND lower(destination) = ANY($1::text[])",
        "created_at, dedup_key",
        by_address=True,
    ),
)


async def rows_naming(conn: DbConnection, source: Source, person: PersonIdentifiers) -> list[ExportItem]:
    """The source's rows that name the person, each as JSON (Postgres' own rendering of dates and jsonb)."""
    # Table and column names come from SOURCES above, never from input; the identifiers are parameters.
    query = (
        f"SELECT to_jsonb(r)::text AS row FROM (SELECT {source.columns} FROM {source.table} "  # noqa: S608
        f"WHERE {source.where} ORDER BY {source.order_by} LIMIT {MAX_ROWS_PER_SOURCE + 1}) r"
    )
    records = await conn.fetch(query, person.addresses() if source.by_address else person.actor_ids())
    if len(records) > MAX_ROWS_PER_SOURCE:
        raise ExportTooLarge(source.table)
    # Sealed text opened (ledger/persons.py): the person gets their words, "erased" where they were erased.
    rows = await reveal(conn, [json.loads(record["row"]) for record in records])
    return [ExportItem(source=source.table, row=row) for row in rows]


async def export_person(conn: DbConnection, person: PersonIdentifiers) -> PersonalDataExport:
    """Every row naming the person, by source, in one repeatable-read snapshot (one consistent document)."""
    items: list[ExportItem] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for source in SOURCES:
            items += await rows_naming(conn, source, person)
    return PersonalDataExport(
        person=person,
        generated_at=datetime.now(UTC),
        retention_version=retention_schedule().version,
        items=items,
        not_included=list(NOT_INCLUDED),
    )


def person_from(identifiers: Sequence[str], emails: Sequence[str]) -> PersonIdentifiers:
    """The identifiers as given (validated by the model); an identifier with an @ counts as an address too."""
    addresses = [*emails, *(i for i in identifiers if "@" in i)]
    return PersonIdentifiers.model_validate(
        {"ids": list(dict.fromkeys(identifiers)), "emails": list(dict.fromkeys(addresses))}
    )
