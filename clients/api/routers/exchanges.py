"""Exchanges: start, read, list; every update and signal of the contract; explanation and ledger history.

One route per message (`/exchanges/{id}/updates/<name>`, `/exchanges/{id}/signals/<name>`), so the OpenAPI
document carries each message's own body schema and example and each operation its own id
(`submitReview`, `confirmPayment`, ...). `confirm_payment` is checked against the recorded payment order
before any signal is sent (clients/payments.py): a repeat is answered from the order row, even after the
workflow has ended.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from pydantic import BaseModel

from clients.api import examples
from clients.api.auth import (
    ACTS_FOR_OTHERS,
    APPLICANT_UPDATES,
    BACK_OFFICE_READERS,
    IMPORTERS,
    INTERNAL_SIGNALS,
    READERS,
    REVIEWER_UPDATES,
    SIGNALLERS,
    STARTERS,
    Principal,
    Role,
)
from clients.api.body import StrictBody
from clients.api.context import (
    Engine,
    act_as,
    allowed,
    original_application,
    require_access,
    require_exchange,
)
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
from clients.client import DuplicateApplication, ExchangeClientError
from clients.explain_commands import explanation
from clients.payments import (
    ConfirmationConflict,
    ConfirmationRefused,
    ConfirmationVerdict,
    check_confirmation,
    find_order,
)
from schemas.exchange import ApplicationInput, ConfirmPaymentInput, ExchangeStatus
from schemas.ids import _ID_PATTERN, exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import TERMINAL_STAGES, Stage

LIST_LIMIT_MAX = 100
LIST_OFFSET_MAX = 100_000

# Ids are checked at the door (the pattern of schemas.ids), so nothing odd ever reaches SQL or Temporal.
ApplicationIdPath = Annotated[str, Path(pattern=_ID_PATTERN, description="the application id")]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=128, description="becomes the Temporal update id: a retry with it is answered once"),
]

router = APIRouter()

_LIST_SQL = """
SELECT application_id, stage, partnership_id, grant_cents, held_cents, paid_cents, next_deadline
  FROM exchanges e
 WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR partnership_id = $2)
   AND (NOT $3 OR (next_deadline < now() AND stage <> ALL($4::text[])))
   AND ($5::text IS NULL OR submitted_by = $5)
   AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM review_assignments r
                                     WHERE r.application_id = e.application_id AND r.reviewer_id = $6))
 ORDER BY next_deadline NULLS LAST, application_id
 LIMIT $7 OFFSET $8"""


@router.post(
    "/exchanges",
    response_model=Started,
    status_code=201,
    tags=["exchanges"],
    operation_id="startExchange",
    summary="Start the exchange of one application (idempotent: the same body again answers 200)",
    responses={
        **example_response(examples.STARTED, "started; Location names the exchange", 201),
        200: {
            "model": Started,
            "description": "a replay: this application had already started this exchange",
            "content": {JSON: {"example": {**examples.STARTED, "replayed": True}}},
        },
        **problem_responses(401, 403, 409, 413, 415, 422, 503),
    },
)
async def start_exchange(
    api: Engine,
    who: Annotated[Principal, allowed(STARTERS, "start exchanges")],
    body: Annotated[ApplicationInput, Depends(StrictBody(ApplicationInput, examples.APPLICATION))],
    response: Response,
) -> Started:
    if who.role == "applicant" and body.submitted_by != who.subject:
        raise forbidden("an applicant may start only their own applications", "submitted_by")
    if who.role not in IMPORTERS and body.submitted_at is not None:
        raise forbidden(
            "only the back office imports a record with its original submission time",
            "submitted_at",
            "leave it out: the exchange counts from now",
        )
    try:
        workflow_id = await api.exchanges.start_exchange(body)
    except DuplicateApplication:
        original = await original_application(api, body.application_id)
        if original is not None and original.model_dump(mode="json") == body.model_dump(mode="json"):
            response.status_code = 200
            workflow_id = exchange_workflow_id(body.application_id)
            return Started(application_id=body.application_id, workflow_id=workflow_id, replayed=True)
        raise ProblemError(
            409,
            "Conflicting application",
            f"application_id {body.application_id!r} already started an exchange with a different application",
            [("application_id", "already used by a different application")],
        ) from None
    except ExchangeClientError as error:
        raise translate(error, ApplicationInput) from None
    response.headers["Location"] = f"/exchanges/{body.application_id}"
    return Started(application_id=body.application_id, workflow_id=workflow_id, replayed=False)


@router.get(
    "/exchanges/{application_id}",
    response_model=ExchangeStatus,
    tags=["exchanges"],
    operation_id="getExchange",
    summary="The exchange's status (the workflow's `status` query)",
    responses={
        **example_response(examples.EXCHANGE_STATUS, "the status now"),
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def get_exchange(
    application_id: ApplicationIdPath, api: Engine, who: Annotated[Principal, allowed(READERS, "read exchanges")]
) -> ExchangeStatus:
    await require_access(api, who, application_id)
    try:
        return await api.exchanges.status(application_id)
    except ExchangeClientError as error:
        raise translate(error) from None


@router.get(
    "/exchanges",
    response_model=ExchangePage,
    tags=["exchanges"],
    operation_id="listExchanges",
    summary="Exchanges from the read model, soonest deadline first (reviewers: assigned; applicants: own)",
    responses={**example_response(examples.EXCHANGE_PAGE, "one page"), **problem_responses(401, 403, 422, 503)},
)
async def list_exchanges(
    api: Engine,
    who: Annotated[Principal, allowed(READERS, "list exchanges")],
    stage: Stage | None = None,
    partnership: Annotated[str | None, Query(pattern=_ID_PATTERN)] = None,
    late: bool = False,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=LIST_OFFSET_MAX)] = 0,
) -> ExchangePage:
    rows = await api.pool.fetch(
        _LIST_SQL,
        stage.value if stage else None,
        partnership,
        late,
        [s.value for s in TERMINAL_STAGES],
        who.subject if who.role == "applicant" else None,
        who.subject if who.role == "reviewer" else None,
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
    responses={
        **example_response(examples.EXPLANATION, "the decisions on record"),
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def explain_exchange(
    application_id: ApplicationIdPath, api: Engine, who: Annotated[Principal, allowed(READERS, "read exchanges")]
) -> Explanation:
    await require_access(api, who, application_id)
    async with api.pool.acquire() as conn:
        document = await explanation(conn, application_id)
    if document is None:
        # No row in the read model: no such exchange, or one started a moment ago with nothing on record yet.
        raise not_found("Exchange", "application_id", f"application_id {application_id!r}: nothing on record")
    return Explanation.model_validate(document)


@router.get(
    "/exchanges/{application_id}/ledger",
    response_model=list[LedgerTransfer],
    tags=["exchanges"],
    operation_id="getLedgerHistory",
    summary="Every ledger transfer of the exchange, oldest first (holds, posts, voids, pay-outs)",
    responses={
        **example_response(examples.LEDGER_HISTORY, "the transfers; empty when nothing was ever held"),
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def ledger_history(
    application_id: ApplicationIdPath,
    api: Engine,
    who: Annotated[Principal, allowed(BACK_OFFICE_READERS, "read the ledger")],
) -> list[LedgerTransfer]:
    await require_exchange(api, application_id)
    transfers = await api.ledger.exchange_history(application_id)
    return [LedgerTransfer.model_validate(t.model_dump(exclude={"replayed"})) for t in transfers]


# Updates: decisions that need an answer ----------------------------------------------------------------


def deciders(update: str) -> frozenset[Role]:
    """Who may send this update: officers and services any; reviewers and applicants those of their role."""
    roles = set(ACTS_FOR_OTHERS)
    if update in REVIEWER_UPDATES:
        roles.add("reviewer")
    if update in APPLICANT_UPDATES:
        roles.add("applicant")
    return frozenset(roles)


def _update_route(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[ExchangeStatus]]:
    body_dependency = StrictBody(model, examples.MESSAGE_EXAMPLES[name])
    actor_field = "actor_id"

    async def send_update(
        application_id: ApplicationIdPath,
        api: Engine,
        who: Annotated[Principal, allowed(deciders(name), f"send {name}")],
        body: Annotated[BaseModel, Depends(body_dependency)],
        idempotency_key: IdempotencyKey = None,
    ) -> ExchangeStatus:
        act_as(who, actor_field, getattr(body, actor_field, None))
        await require_access(api, who, application_id)
        try:
            return await api.exchanges.decide(application_id, name, body, update_id=idempotency_key)
        except ExchangeClientError as error:
            raise translate(error, model) from None

    send_update.__name__ = f"update_{name}"
    return send_update


for _name, _model in UPDATES.items():
    router.post(
        f"/exchanges/{{application_id}}/updates/{_name}",
        response_model=ExchangeStatus,
        tags=["updates"],
        operation_id=camel(_name),
        summary=f"Send the `{_name}` update; answers the status after the decision",
        description=(_model.__doc__ or "").strip(),
        responses={
            **example_response(examples.EXCHANGE_STATUS, "recorded: the status after the decision"),
            **problem_responses(401, 403, 404, 409, 413, 415, 422, 503),
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
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 503),
    },
)
async def confirm_payment(
    application_id: ApplicationIdPath,
    api: Engine,
    who: Annotated[Principal, allowed(SIGNALLERS, "confirm payments")],
    body: Annotated[
        ConfirmPaymentInput,
        Depends(StrictBody(ConfirmPaymentInput, examples.MESSAGE_EXAMPLES["confirm_payment"])),
    ],
    response: Response,
) -> Accepted | AlreadyConfirmed:
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
        assert order is not None and order.payment_reference is not None, "a recorded confirmation"
        response.status_code = 200
        return AlreadyConfirmed(
            application_id=application_id,
            payment_order_id=order.payment_order_id,
            payment_reference=order.payment_reference,
            confirmed_by=order.confirmed_by,
            confirmed_at=order.confirmed_at,
        )
    try:
        await api.exchanges.signal(application_id, "confirm_payment", body)
    except ExchangeClientError as error:
        raise translate(error, ConfirmPaymentInput) from None
    return Accepted(application_id=application_id, signal="confirm_payment")


def _signal_route(name: str, model: type[BaseModel]) -> Callable[..., Awaitable[Accepted]]:
    body_dependency = StrictBody(model, examples.MESSAGE_EXAMPLES[name])

    async def send_signal(
        application_id: ApplicationIdPath,
        api: Engine,
        who: Annotated[Principal, allowed(SIGNALLERS, f"send {name}")],
        body: Annotated[BaseModel, Depends(body_dependency)],
    ) -> Accepted:
        try:
            await api.exchanges.signal(application_id, name, body)
        except ExchangeClientError as error:
            raise translate(error, model) from None
        return Accepted(application_id=application_id, signal=name)

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
            **problem_responses(401, 403, 404, 409, 413, 415, 422, 503),
        },
    )(_signal_route(_name, _model))
