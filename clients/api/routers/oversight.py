"""The back office's oversight over HTTP (issue 14): counts, waitlists, stuck exchanges, timelines, payment orders,
and the bulk import of applications.

What programme officers and ops read to run the scheme (the web app's officer pages show exactly these), from
the read model (ledger/oversight.py) and the payment orders (clients/payments.py); and `POST /imports`, what
`cx import` does (clients/import_commands.py) for a CSV or JSON file sent over HTTP: every row is checked first,
each good one starts its exchange once (an application already started with the same content counts as done),
each bad one is reported with its line, field and rule, and nothing else stops the others.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from clients.api import idempotency
from clients.api.body import multipart_form
from clients.api.context import Api, Engine, Permit, authorise, engine_call, original_application, permitted
from clients.api.idempotency import Answer, body_sha256
from clients.api.openapi import example_response
from clients.api.problems import ProblemError, invalid, not_found, problem_responses
from clients.api.routers.budgets import PartnershipIdPath
from clients.api.routers.exchanges import ApplicationIdPath, IdempotencyKey, check_start
from clients.client import DuplicateApplication, ExchangeClientError, InvalidInput, parse
from clients.import_commands import ImportRow, conflict_with, rows_of_text
from clients.input_files import InputRefused, decode_text
from clients.payments import list_orders
from ledger.oversight import (
    MAX_STUCK_DAYS,
    STUCK_AFTER_DAYS,
    StageCount,
    StuckExchange,
    TimelineEvent,
    WaitingExchange,
    stage_counts,
    stuck_exchanges,
    timeline,
    waitlist,
)
from schemas.exchange import ApplicationInput
from schemas.ids import _ID_PATTERN, ID_MAX_LENGTH, ID_MIN_LENGTH
from schemas.policy import load_policy
from schemas.stages import Stage

# One import is one request, bounded by the request's deadline (three engine calls' worth): a start takes a
# few milliseconds, so 200 rows fit with room to spare; a larger file is split, or imported with `cx import`.
MAX_IMPORT_ROWS = 200
MAX_IMPORT_BYTES = 512 * 1024
MAX_ORDERS = 1000
_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

router = APIRouter(tags=["oversight"])


# Models --------------------------------------------------------------------------------------------------


OrderStateName = Literal["pending", "sent", "confirmed", "overdue"]  # PaymentOrder.state's answers


class PaymentOrderRow(BaseModel):
    """A payment order with its state against the policy's payment SLA (`cx payments`)."""

    payment_order_id: str
    application_id: str
    partnership_id: str
    amount_cents: int
    state: OrderStateName = Field(
        description="pending (not yet delivered to finance), sent, confirmed, or overdue (unconfirmed past the SLA)"
    )
    created_at: datetime
    sent_at: datetime | None
    confirmed_at: datetime | None
    payment_reference: str | None
    confirmed_by: str | None


class RowError(BaseModel):
    """What is wrong with one row: the field (when one is named), the CSV column that holds it, and the rule."""

    field: str | None
    column: str | None
    message: str


class ImportedRow(BaseModel):
    row: int = Field(ge=1, description="the application's place in the file, counting from 1")
    line: int = Field(ge=1, description="the line of the file where it starts")
    application_id: str | None
    outcome: Literal["started", "already started", "refused", "conflict"]
    errors: list[RowError] = Field(default_factory=list)


class ImportReport(BaseModel):
    rows: list[ImportedRow]
    counts: dict[str, int] = Field(description="rows per outcome: started, already started, refused, conflict")


# Examples, built from the models so they cannot drift -------------------------------------------------------

COUNTS_EXAMPLE = [StageCount(stage=Stage.REVIEW, partnership_id="photonics4i", count=12).model_dump(mode="json")]
WAITLIST_EXAMPLE = [
    WaitingExchange(
        position=1,
        application_id="app-2026-0042",
        grant_cents=95_000,
        waitlisted_at=_AT,
        waitlist_deadline=datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
    ).model_dump(mode="json")
]
STUCK_EXAMPLE = [
    StuckExchange(
        application_id="app-2026-0042",
        stage=Stage.REPORTING,
        partnership_id="photonics4i",
        last_event="stage_entered",
        last_event_at=_AT,
        next_deadline=None,
        quiet_days=21,
    ).model_dump(mode="json")
]
TIMELINE_EXAMPLE = [
    TimelineEvent(
        sequence=9,
        event="review_overridden",
        stage="REVIEW",
        actor_id="officer-olga",
        reason="both reviewers were unavailable",
        policy_version="2022.1",
        details={"decision": "approve"},
        at=_AT,
    ).model_dump(mode="json")
]
ORDERS_EXAMPLE = [
    PaymentOrderRow(
        payment_order_id="po-app-2026-0042",
        application_id="app-2026-0042",
        partnership_id="photonics4i",
        amount_cents=95_000,
        state="confirmed",
        created_at=_AT,
        sent_at=_AT,
        confirmed_at=datetime(2026, 3, 5, 14, 0, tzinfo=UTC),
        payment_reference="SEPA-2027-000123",
        confirmed_by="finance-fia",
    ).model_dump(mode="json")
]
IMPORT_EXAMPLE = ImportReport(
    rows=[
        ImportedRow(row=1, line=2, application_id="app-2026-0042", outcome="started"),
        ImportedRow(
            row=2,
            line=3,
            application_id="app-2026-0043",
            outcome="refused",
            errors=[RowError(field="visitor.country", column="visitor_country", message="R4: not a COSME country")],
        ),
    ],
    counts={"started": 1, "already started": 0, "refused": 1, "conflict": 0},
).model_dump(mode="json")
IMPORT_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "a .csv (header: application_id, visitor_name, ...; `cx import --help`) or a .json list, "
            f"UTF-8, at most {MAX_IMPORT_ROWS} applications",
        }
    },
}


# Reads ---------------------------------------------------------------------------------------------------


@router.get(
    "/exchange-counts",
    response_model=list[StageCount],
    operation_id="countExchanges",
    summary="How many exchanges each partnership has in each stage (the officers' dashboard)",
    responses={**example_response(COUNTS_EXAMPLE, "the counts"), **problem_responses(401, 403, 503)},
)
async def count_exchanges(api: Engine, permit: Annotated[Permit, permitted("countExchanges")]) -> list[StageCount]:
    async with api.pool.acquire() as conn:
        return await stage_counts(conn)


@router.get(
    "/partnerships/{partnership_id}/waitlist",
    response_model=list[WaitingExchange],
    operation_id="getWaitlist",
    summary="The partnership's WAITLISTED exchanges in the order its Funds workflow serves them (FIFO)",
    description="Oldest first: the first is held as soon as released money covers its grant; none overtakes it.",
    responses={
        **example_response(WAITLIST_EXAMPLE, "the waitlist, first served first"),
        **problem_responses(401, 403, 422, 503),
    },
)
async def get_waitlist(
    partnership_id: PartnershipIdPath, api: Engine, permit: Annotated[Permit, permitted("getWaitlist")]
) -> list[WaitingExchange]:
    async with api.pool.acquire() as conn:
        return await waitlist(conn, partnership_id)


@router.get(
    "/stuck-exchanges",
    response_model=list[StuckExchange],
    operation_id="listStuckExchanges",
    summary="Open exchanges with nothing recorded for `quiet_days` days and no deadline ahead, the quietest first",
    description=(
        f"Stuck: not in a terminal stage, no audit event for `quiet_days` days (default {STUCK_AFTER_DAYS}), and no "
        "deadline of its stage still to come (an exchange waiting for a timer ahead waits as designed). Exchanges "
        "past a deadline are `GET /exchanges?late=true`."
    ),
    responses={**example_response(STUCK_EXAMPLE, "the stuck exchanges"), **problem_responses(401, 403, 422, 503)},
)
async def list_stuck(
    api: Engine,
    permit: Annotated[Permit, permitted("listStuckExchanges")],
    quiet_days: Annotated[int, Query(ge=1, le=MAX_STUCK_DAYS)] = STUCK_AFTER_DAYS,
) -> list[StuckExchange]:
    async with api.pool.acquire() as conn:
        return await stuck_exchanges(conn, quiet_days)


@router.get(
    "/exchanges/{application_id}/timeline",
    response_model=list[TimelineEvent],
    operation_id="getExchangeTimeline",
    summary="Every event of the exchange's audit trail, oldest first: what, who, when, why, which policy version",
    responses={**example_response(TIMELINE_EXAMPLE, "the audit trail"), **problem_responses(401, 403, 404, 422, 503)},
)
async def get_timeline(
    application_id: ApplicationIdPath, api: Engine, permit: Annotated[Permit, permitted("getExchangeTimeline")]
) -> list[TimelineEvent]:
    await authorise(api, permit, application_id)
    async with api.pool.acquire() as conn:
        events = await timeline(conn, application_id)
    if events is None:
        raise not_found("Exchange", "application_id", f"application_id {application_id!r}: nothing on record")
    return events


@router.get(
    "/payment-orders",
    response_model=list[PaymentOrderRow],
    operation_id="listPaymentOrders",
    summary="Payment orders, oldest first, each with its state against the policy's payment SLA (`cx payments`)",
    responses={**example_response(ORDERS_EXAMPLE, "the orders"), **problem_responses(401, 403, 422, 503)},
)
async def list_payment_orders(
    api: Engine,
    permit: Annotated[Permit, permitted("listPaymentOrders")],
    partnership: Annotated[
        str | None, Query(pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH)
    ] = None,
) -> list[PaymentOrderRow]:
    sla_days = load_policy().deadlines.payment_sla_days
    now = datetime.now(UTC)
    orders = await list_orders(api.pool, partnership_id=partnership, limit=MAX_ORDERS)
    return [
        PaymentOrderRow(
            payment_order_id=o.payment_order_id,
            application_id=o.application_id,
            partnership_id=o.partnership_id,
            amount_cents=o.amount_cents,
            state=cast(OrderStateName, o.state(now, sla_days)),
            created_at=o.created_at,
            sent_at=o.sent_at,
            confirmed_at=o.confirmed_at,
            payment_reference=o.payment_reference,
            confirmed_by=o.confirmed_by,
        )
        for o in orders
    ]


# The import --------------------------------------------------------------------------------------------------


async def _read_import(request: Request) -> tuple[str, bytes]:
    """The uploaded file's name and bytes (422 naming `file` when there is none or it is too large)."""
    async with multipart_form(request, max_files=1, max_fields=0, max_part_size=1024) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise invalid([("file", "Field required: the CSV or JSON file as a file part")])
        data = await file.read(MAX_IMPORT_BYTES + 1)
        name = file.filename or "import.csv"
    if len(data) > MAX_IMPORT_BYTES:
        raise invalid([("file", f"at most {MAX_IMPORT_BYTES // 1024} KiB per import; split the file")])
    return name, data


def _rows(name: str, data: bytes) -> list[ImportRow]:
    suffix = ".json" if name.lower().endswith(".json") else ".csv"
    shown = name[-80:]
    try:
        rows = rows_of_text(decode_text(data, shown), suffix, shown)
    except InputRefused as error:
        raise ProblemError(422, "File refused", str(error), [("file", str(error))]) from None
    if len(rows) > MAX_IMPORT_ROWS:
        detail = f"{len(rows)} applications; at most {MAX_IMPORT_ROWS} per request (split it, or use `cx import`)"
        raise ProblemError(422, "File refused", detail, [("file", detail)])
    return rows


def _checked(row: ImportRow, permit: Permit) -> ApplicationInput | list[RowError]:
    """The row as an application the caller may start, or what is wrong with it (each field and its rule)."""
    if row.problems:
        return [RowError(field=None, column=None, message=problem) for problem in row.problems]
    try:
        application = parse(ApplicationInput, row.data)
    except InvalidInput as refused:
        return [RowError(field=f, column=row.columns.get(f), message=m) for f, m in refused.errors]
    try:
        check_start(permit, application)
    except ProblemError as error:
        if not error.problem.errors:
            return [RowError(field=None, column=None, message=error.problem.detail)]
        return [
            RowError(field=e.field, column=row.columns.get(e.field), message=e.message) for e in error.problem.errors
        ]
    return application


async def _start(api: Api, row: ImportRow, application: ApplicationInput) -> ImportedRow:
    """Start the row's exchange once: started, already started (the same application), or a conflict."""
    base = {"row": row.row, "line": row.line, "application_id": application.application_id}
    try:
        async with engine_call(api):
            await api.exchanges.start_exchange(application)
    except DuplicateApplication:
        conflict = conflict_with(application, await original_application(api, application.application_id))
        if conflict is None:
            return ImportedRow(**base, outcome="already started")
        return ImportedRow(
            **base, outcome="conflict", errors=[RowError(field="application_id", column=None, message=conflict)]
        )
    except InvalidInput as refused:
        errors = [RowError(field=f, column=row.columns.get(f), message=m) for f, m in refused.errors]
        return ImportedRow(**base, outcome="refused", errors=errors)
    return ImportedRow(**base, outcome="started")


@router.post(
    "/imports",
    response_model=ImportReport,
    operation_id="importApplications",
    summary="Import a CSV or JSON file of applications: each good row starts its exchange once, each bad one is "
    "reported with its line, field and rule",
    description=(
        "multipart/form-data with one part `file` (a `.json` name is read as a JSON list, anything else as CSV with "
        f"`cx import`'s header), UTF-8, at most {MAX_IMPORT_ROWS} applications. Every row is checked first; a row "
        "already started with the same application is `already started` (importing a file again starts nothing "
        "twice), one whose id started a different application a `conflict` naming the first differing field. A file "
        "that cannot be read as a whole is 422 naming `file`. The caller is authorised before the file is read."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": IMPORT_FORM_SCHEMA,
                    "example": {"file": "(the CSV: application_id,visitor_name,...)"},
                    "encoding": {"file": {"contentType": "text/csv, application/json"}},
                }
            },
        }
    },
    responses={
        **example_response(IMPORT_EXAMPLE, "the per-row report (200 even when some rows were refused)"),
        **problem_responses(401, 403, 409, 413, 422, 503, 504),
    },
)
async def import_applications(
    api: Engine,
    permit: Annotated[Permit, permitted("importApplications")],
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    name, data = await _read_import(request)
    rows = _rows(name, data)
    once = idempotency.Request(
        idempotency_key, permit.who.subject, "POST /imports", "", body_sha256({"name": name, "bytes": data.hex()})
    )

    async def start_all() -> Answer:
        report: list[ImportedRow] = []
        for row in rows:
            checked = _checked(row, permit)
            if isinstance(checked, list):
                report.append(
                    ImportedRow(
                        row=row.row, line=row.line, application_id=row.application_id, outcome="refused", errors=checked
                    )
                )
                continue
            try:
                report.append(await _start(api, row, checked))
            except ExchangeClientError as error:
                failed = RowError(field=None, column=None, message=str(error))
                report.append(
                    ImportedRow(
                        row=row.row,
                        line=row.line,
                        application_id=row.application_id,
                        outcome="refused",
                        errors=[failed],
                    )
                )
        outcomes = ("started", "already started", "refused", "conflict")
        counts = {o: sum(1 for r in report if r.outcome == o) for o in outcomes}
        return Answer(200, ImportReport(rows=report, counts=counts).model_dump(mode="json"))

    return await idempotency.once(api.pool, once, api.request_deadline_s, start_all)
