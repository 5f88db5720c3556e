"""Exchanges: start, read, list; every update and signal of the contract; explanation and ledger history.

One route per message (`/exchanges/{id}/updates/<name>`, `/exchanges/{id}/signals/<name>`), so the OpenAPI
document carries each message's own body schema and example and each operation its own id
(`submitReview`, `confirmPayment`, ...). `confirm_payment` is checked against the recorded payment order
before any signal is sent (clients/payments.py): a repeat is answered from the order row, even after the
workflow has ended.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from clients.api import examples, idempotency
from clients.api.access import OFFICER_FIELDS, ORGANISATION_PARTIES, Actor, Facts, Kind, Reach, reaches
from clients.api.auth import INTERNAL_SIGNALS
from clients.api.body import StrictBody
from clients.api.context import (
    STANDING_ASSIGNMENTS,
    Api,
    Engine,
    Permit,
    application_parties,
    authorise,
    engine_call,
    original_application,
    permitted,
    require_exchange,
)
from clients.api.idempotency import Answer, body_sha256
from clients.api.models import (
    Accepted,
    AlreadyConfirmed,
    ExchangePage,
    ExchangeRow,
    Explanation,
    LedgerTransfer,
    Started,
)
from clients.api.openapi import JSON, camel, example_response
from clients.api.problems import ProblemError, forbidden, not_found, problem_responses, translate
from clients.api.views import PartyExchangeView, party_explanation, party_status, reviewers_of
from clients.client import DuplicateApplication, ExchangeClientError
from clients.explain_commands import explanation
from clients.payments import (
    ConfirmationConflict,
    ConfirmationRefused,
    ConfirmationVerdict,
    check_confirmation,
    find_order,
)
from schemas.exchange import ApplicationInput, ConfirmPaymentInput, ExchangeStatus, Party
from schemas.ids import _ID_PATTERN, ID_MAX_LENGTH, ID_MIN_LENGTH, exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import TERMINAL_STAGES, Stage

logger = logging.getLogger(__name__)
LIST_LIMIT_MAX = 100
LIST_OFFSET_MAX = 100_000
# The kinds that read in the party view (clients/api/views.py): reviewers counted, never named.
PARTY_VIEW_KINDS = frozenset({Kind.APPLICANT, Kind.PARTY_SERVICE})

# Ids are checked at the door (the pattern of schemas.ids), so nothing odd ever reaches SQL or Temporal.
ApplicationIdPath = Annotated[
    str, Path(pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH, description="the application id")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=128,
        description="the same request again with the same key is answered once, with the first answer "
        "(`Idempotent-Replayed: true`); the same key with another request is 422; one still in flight 409",
    ),
]

router = APIRouter()

# Who may see which rows: the same ways as a read of one exchange (clients/api/access.py), in SQL.
_LIST_SQL = """
SELECT application_id, stage, partnership_id, grant_cents, held_cents, paid_cents, next_deadline
  FROM exchanges e
 WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR partnership_id = $2)
   AND (NOT $3 OR (next_deadline < now() AND stage <> ALL($4::text[])))
   AND ($5
        OR e.submitted_by = $6
        OR e.visitor_org_id = ANY($7::text[]) OR e.host_org_id = ANY($8::text[])
        OR e.partnership_id = ANY($9::text[]) OR e.host_partnership_id = ANY($10::text[])
        OR EXISTS (SELECT 1 FROM review_assignments r
                    WHERE r.application_id = e.application_id AND r.reviewer_id = $11
                      AND r.status = ANY($12::text[])))
 ORDER BY next_deadline NULLS LAST, application_id
 LIMIT $13 OFFSET $14"""


Status = ExchangeStatus | PartyExchangeView
STATUS_DESCRIPTION = (
    "the status; applicants and the services of parties get the party view (`view: party`): reviewers are "
    "counted, never named, and the back office's alerts are left out"
)


async def _as_seen_by(api: Api, permit: Permit, status: ExchangeStatus) -> Status:
    """The status as this caller may see it (need to know, clients/api/views.py)."""
    if permit.kind in PARTY_VIEW_KINDS:
        return party_status(status, await reviewers_of(api.pool, status.application_id))
    return status


def _officer_field_set(body: ApplicationInput, name: str) -> bool:
    value = getattr(body, name)
    return value is not None and value is not False


def check_start(permit: Permit, body: ApplicationInput) -> None:
    """Who may start what (issue 11, items 1 and 2): `submitted_by` is the caller unless the caller is the
    back office importing a record or a service naming its own person; only officers set officer fields;
    a party's service starts only applications of its own visitor organisation or partnership."""
    who, cell = permit.who, permit.cell
    if cell.actor is Actor.SELF and body.submitted_by != who.subject:
        raise forbidden(
            f"submitted_by must be {who.subject!r}: an applicant submits only as themselves",
            "submitted_by",
            f"must be {who.subject!r}",
        )
    if not cell.officer_fields:
        for name in OFFICER_FIELDS:
            if _officer_field_set(body, name):
                raise forbidden(
                    f"{name} is set only by the back office (an officer importing a record, or `cx import`)",
                    name,
                    "leave it out: an officer's field",
                )
    if Reach.PARTY in cell.reach:
        facts = Facts(submitted_by=body.submitted_by, parties=application_parties(body))
        if not reaches(who, cell, facts):
            raise forbidden(
                f"{who.subject!r} acts for neither the visitor organisation nor the visitor partnership",
                "visitor_partnership_id",
                "a service starts applications of the parties its credentials name",
            )


@router.post(
    "/exchanges",
    response_model=Started,
    status_code=201,
    tags=["exchanges"],
    operation_id="startExchange",
    summary="Start the exchange of one application (idempotent: the same body again answers 200)",
    description=(
        "`submitted_by` is the caller for an applicant. `submitted_at`, `policy_version`, `host_agency_approved` "
        "and `host_agency_approval_reference` are the back office's fields (officers only; each use is in the "
        "audit trail). A party's service starts applications of its own visitor organisation or partnership."
    ),
    responses={
        **example_response(examples.STARTED, "started; Location names the exchange", 201),
        200: {
            "model": Started,
            "description": "a replay: this application had already started this exchange",
            "content": {JSON: {"example": {**examples.STARTED, "replayed": True}}},
        },
        **problem_responses(401, 403, 409, 413, 415, 422, 503, 504),
    },
)
async def start_exchange(
    api: Engine,
    permit: Annotated[Permit, permitted("startExchange")],
    body: Annotated[ApplicationInput, Depends(StrictBody(ApplicationInput, examples.APPLICATION))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    check_start(permit, body)
    # The exchange this request concerns, on every line logged from here on (its id is in the body).
    structlog.contextvars.bind_contextvars(exchange_id=body.application_id)
    if any(_officer_field_set(body, name) for name in OFFICER_FIELDS):
        # The workflow records the fields in the SUBMITTED audit row under the submitter's name; this line
        # says which principal sent them.
        used = [name for name in OFFICER_FIELDS if _officer_field_set(body, name)]
        logger.info(
            "officer fields set at start",
            extra={"application_id": body.application_id, "principal": permit.who.subject, "fields": used},
        )
    request = idempotency.Request(
        idempotency_key, permit.who.subject, "POST /exchanges", "", body_sha256(body.model_dump(mode="json"))
    )

    async def start() -> Answer:
        workflow_id = exchange_workflow_id(body.application_id)
        try:
            async with engine_call(api):
                await api.exchanges.start_exchange(body)
        except DuplicateApplication:
            original = await original_application(api, body.application_id)
            if original is not None and original.model_dump(mode="json") == body.model_dump(mode="json"):
                replayed = Started(application_id=body.application_id, workflow_id=workflow_id, replayed=True)
                return Answer(200, replayed.model_dump(mode="json"))
            raise ProblemError(
                409,
                "Conflicting application",
                f"application_id {body.application_id!r} already started an exchange with a different application",
                [("application_id", "already used by a different application")],
            ) from None
        except ExchangeClientError as error:
            raise translate(error, ApplicationInput) from None
        started = Started(application_id=body.application_id, workflow_id=workflow_id, replayed=False)
        return Answer(201, started.model_dump(mode="json"), {"Location": f"/exchanges/{body.application_id}"})

    return await idempotency.once(api.pool, request, api.request_deadline_s, start)


@router.get(
    "/exchanges/{application_id}",
    response_model=Status,
    tags=["exchanges"],
    operation_id="getExchange",
    summary="The exchange's status (the workflow's `status` query)",
    responses={
        **example_response(examples.EXCHANGE_STATUS, STATUS_DESCRIPTION),
        **problem_responses(401, 403, 404, 422, 503, 504),
    },
)
async def get_exchange(
    application_id: ApplicationIdPath, api: Engine, permit: Annotated[Permit, permitted("getExchange")]
) -> Status:
    await authorise(api, permit, application_id)
    try:
        async with engine_call(api):
            status = await api.exchanges.status(application_id)
    except ExchangeClientError as error:
        raise translate(error) from None
    return await _as_seen_by(api, permit, status)


@router.get(
    "/exchanges/{application_id}/application",
    response_model=None,
    tags=["exchanges"],
    operation_id="getApplication",
    summary="The application as it stands now (amendments applied): organisations, countries, dates, goals",
    responses={
        # The start's own component: one shape for the application in and out (clients/api/openapi.py).
        200: {
            "description": "the application",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ApplicationInput"},
                    "example": examples.APPLICATION,
                }
            },
        },
        **problem_responses(401, 403, 404, 422, 503, 504),
    },
)
async def get_application(
    application_id: ApplicationIdPath, api: Engine, permit: Annotated[Permit, permitted("getApplication")]
) -> JSONResponse:
    await authorise(api, permit, application_id)
    try:
        async with engine_call(api):
            application = await api.exchanges.application(application_id)
    except ExchangeClientError as error:
        raise translate(error) from None
    return JSONResponse(application.model_dump(mode="json"))


@router.get(
    "/exchanges",
    response_model=ExchangePage,
    tags=["exchanges"],
    operation_id="listExchanges",
    summary="Exchanges from the read model, soonest deadline first: exactly those the caller may read",
    responses={**example_response(examples.EXCHANGE_PAGE, "one page"), **problem_responses(401, 403, 422, 503)},
)
async def list_exchanges(
    api: Engine,
    permit: Annotated[Permit, permitted("listExchanges")],
    stage: Stage | None = None,
    partnership: Annotated[
        str | None, Query(pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH)
    ] = None,
    late: bool = False,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=LIST_OFFSET_MAX)] = 0,
) -> ExchangePage:
    who, cell = permit.who, permit.cell

    def held(party: Party) -> list[str]:
        if Reach.PARTY not in cell.reach or party not in cell.parties:
            return []
        return sorted(who.organisations if party in ORGANISATION_PARTIES else who.partnerships)

    rows = await api.pool.fetch(
        _LIST_SQL,
        stage.value if stage else None,
        partnership,
        late,
        [s.value for s in TERMINAL_STAGES],
        Reach.ANY in cell.reach,
        who.subject if Reach.SUBMITTER in cell.reach else None,
        held(Party.VISITOR_ORGANISATION),
        held(Party.HOST_ORGANISATION),
        held(Party.VISITOR_PARTNERSHIP),
        held(Party.HOST_PARTNERSHIP),
        who.subject if Reach.ASSIGNED in cell.reach else None,
        list(STANDING_ASSIGNMENTS),
        limit + 1,
        offset,
    )
    items = [ExchangeRow.model_validate(dict(row)) for row in rows[:limit]]
    return ExchangePage(
        items=items, limit=limit, offset=offset, next_offset=offset + limit if len(rows) > limit else None
    )


@router.get(
    "/exchanges/{application_id}/explanation",
    response_model=Explanation,
    tags=["exchanges"],
    operation_id="explainExchange",
    summary="Every screening, review and pricing decision with its policy version, input digest and reasons",
    description=(
        "Applicants and the services of parties read reviews under pseudonyms (`reviewer 1`): recommendations, "
        "scores and comments, never names or organisations."
    ),
    responses={
        **example_response(examples.EXPLANATION, "the decisions on record"),
        **problem_responses(401, 403, 404, 422, 503, 504),
    },
)
async def explain_exchange(
    application_id: ApplicationIdPath, api: Engine, permit: Annotated[Permit, permitted("explainExchange")]
) -> Explanation:
    await authorise(api, permit, application_id)
    async with api.pool.acquire() as conn:
        document = await explanation(conn, application_id)
    if document is None:
        # No row in the read model: no such exchange, or one started a moment ago with nothing on record yet.
        raise not_found("Exchange", "application_id", f"application_id {application_id!r}: nothing on record")
    explained = Explanation.model_validate(document)
    if permit.kind in PARTY_VIEW_KINDS:
        return party_explanation(explained, await reviewers_of(api.pool, application_id))
    return explained


@router.get(
    "/exchanges/{application_id}/ledger",
    response_model=list[LedgerTransfer],
    tags=["exchanges"],
    operation_id="getLedgerHistory",
    summary="Every ledger transfer of the exchange, oldest first (holds, posts, voids, pay-outs)",
    responses={
        **example_response(examples.LEDGER_HISTORY, "the transfers; empty when nothing was ever held"),
        **problem_responses(401, 403, 404, 422, 503, 504),
    },
)
async def ledger_history(
    application_id: ApplicationIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("getLedgerHistory")],
) -> list[LedgerTransfer]:
    await authorise(api, permit, application_id)
    await require_exchange(api, application_id)
    transfers = await api.ledger.exchange_history(application_id)
    return [LedgerTransfer.model_validate(t.model_dump(exclude={"replayed"})) for t in transfers]


# Updates: decisions that need an answer ----------------------------------------------------------------


def _update_route(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[Response]]:
    body_dependency = StrictBody(model, examples.MESSAGE_EXAMPLES[name])
    route = f"POST /exchanges/{{application_id}}/updates/{name}"

    async def send_update(
        application_id: ApplicationIdPath,
        api: Engine,
        permit: Annotated[Permit, permitted(camel(name))],
        body: Annotated[BaseModel, Depends(body_dependency)],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        sent = await authorise(api, permit, application_id, body)
        assert sent is not None, "a body in, a body out"
        request = idempotency.Request(
            idempotency_key, permit.who.subject, route, application_id, body_sha256(body.model_dump(mode="json"))
        )

        async def decide() -> Answer:
            try:
                async with engine_call(api):
                    status = await api.exchanges.decide(application_id, name, sent, update_id=request.update_id)
            except ExchangeClientError as error:
                raise translate(error, model) from None
            return Answer(200, (await _as_seen_by(api, permit, status)).model_dump(mode="json"))

        return await idempotency.once(api.pool, request, api.request_deadline_s, decide)

    send_update.__name__ = f"update_{name}"
    return send_update


for _name, _model in UPDATES.items():
    router.post(
        f"/exchanges/{{application_id}}/updates/{_name}",
        response_model=Status,
        tags=["updates"],
        operation_id=camel(_name),
        summary=f"Send the `{_name}` update; answers the status after the decision",
        description=(_model.__doc__ or "").strip(),
        responses={
            **example_response(examples.EXCHANGE_STATUS, f"recorded: {STATUS_DESCRIPTION}"),
            **problem_responses(401, 403, 404, 409, 413, 415, 422, 503, 504),
        },
    )(_update_route(_name, _model))


# Signals: facts from other systems ---------------------------------------------------------------------


@router.post(
    "/exchanges/{application_id}/signals/confirm_payment",
    response_model=None,
    status_code=202,
    tags=["signals"],
    operation_id="confirmPayment",
    summary="Finance confirms the payment order (checked against the order on record before it is sent)",
    description=(
        "A confirmation that matches the unconfirmed order is sent to the workflow (202). A repeat with the "
        "recorded reference answers 200 `already_confirmed` and sends nothing, even after the exchange ended; "
        "another reference for a confirmed order is 409; another order id or amount, or no order yet, 422."
    ),
    responses={
        202: {"model": Accepted, "description": "sent", "content": {JSON: {"example": examples.ACCEPTED}}},
        200: {
            "model": AlreadyConfirmed,
            "description": "already confirmed with this reference: nothing sent",
            "content": {JSON: {"example": examples.ALREADY_CONFIRMED}},
        },
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 503, 504),
    },
)
async def confirm_payment(
    application_id: ApplicationIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("confirmPayment")],
    body: Annotated[
        ConfirmPaymentInput,
        Depends(StrictBody(ConfirmPaymentInput, examples.MESSAGE_EXAMPLES["confirm_payment"])),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    await authorise(api, permit, application_id, body)
    request = idempotency.Request(
        idempotency_key,
        permit.who.subject,
        "POST /exchanges/{application_id}/signals/confirm_payment",
        application_id,
        body_sha256(body.model_dump(mode="json")),
    )

    async def confirm() -> Answer:
        order = await find_order(api.pool, application_id)
        if order is None:
            await require_exchange(api, application_id)
        try:
            verdict = check_confirmation(application_id, body, order)
        except ConfirmationRefused as error:
            raise ProblemError(422, "Confirmation refused", str(error), [(error.field, error.message)]) from None
        except ConfirmationConflict as error:
            raise ProblemError(409, "Confirmation conflict", str(error), [("payment_reference", str(error))]) from None
        if verdict is ConfirmationVerdict.ALREADY_CONFIRMED:
            assert order is not None, "a recorded confirmation"
            assert order.payment_reference is not None, "a recorded confirmation"
            confirmed = AlreadyConfirmed(
                application_id=application_id,
                payment_order_id=order.payment_order_id,
                payment_reference=order.payment_reference,
                confirmed_by=order.confirmed_by,
                confirmed_at=order.confirmed_at,
            )
            return Answer(200, confirmed.model_dump(mode="json"))
        try:
            async with engine_call(api):
                await api.exchanges.signal(application_id, "confirm_payment", body)
        except ExchangeClientError as error:
            raise translate(error, ConfirmPaymentInput) from None
        return Answer(202, Accepted(application_id=application_id, signal="confirm_payment").model_dump(mode="json"))

    return await idempotency.once(api.pool, request, api.request_deadline_s, confirm)


def _signal_route(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[Response]]:
    body_dependency = StrictBody(model, examples.MESSAGE_EXAMPLES[name])
    route = f"POST /exchanges/{{application_id}}/signals/{name}"

    async def send_signal(
        application_id: ApplicationIdPath,
        api: Engine,
        permit: Annotated[Permit, permitted(camel(name))],
        body: Annotated[BaseModel, Depends(body_dependency)],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        await authorise(api, permit, application_id, body)
        request = idempotency.Request(
            idempotency_key, permit.who.subject, route, application_id, body_sha256(body.model_dump(mode="json"))
        )

        async def signal() -> Answer:
            try:
                async with engine_call(api):
                    await api.exchanges.signal(application_id, name, body)
            except ExchangeClientError as error:
                raise translate(error, model) from None
            return Answer(202, Accepted(application_id=application_id, signal=name).model_dump(mode="json"))

        return await idempotency.once(api.pool, request, api.request_deadline_s, signal)

    send_signal.__name__ = f"signal_{name}"
    return send_signal


_SPECIAL_SIGNALS = frozenset({"confirm_payment"})
for _name, _model in SIGNALS.items():
    if _name in INTERNAL_SIGNALS | _SPECIAL_SIGNALS:
        continue
    router.post(
        f"/exchanges/{{application_id}}/signals/{_name}",
        response_model=Accepted,
        status_code=202,
        tags=["signals"],
        operation_id=camel(_name),
        summary=f"Send the `{_name}` signal",
        description=(_model.__doc__ or "").strip(),
        responses={
            **example_response({**examples.ACCEPTED, "signal": _name}, "sent", 202),
            **problem_responses(401, 403, 404, 409, 413, 415, 422, 503, 504),
        },
    )(_signal_route(_name, _model))
