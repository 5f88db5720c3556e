"""FUNDING's money over HTTP: budgets, partnerships (their records: seeding) and budget top-ups.

A top-up is `cx top-up` (clients/budgets.py): booked once per reference, then offered to the
partnership's waitlist, oldest first. Amounts are integer cents, never euros with decimals.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from temporalio.service import RPCError

from clients.api import examples, idempotency
from clients.api.body import StrictBody
from clients.api.context import Engine, Permit, engine_call, permitted
from clients.api.idempotency import Answer, body_sha256
from clients.api.models import Budget, Partnership, RegisterPartnershipInput, TopUp, TopUpInput
from clients.api.openapi import JSON, example_response
from clients.api.problems import ProblemError, not_found, problem_responses
from clients.api.routers.exchanges import IdempotencyKey
from clients.budgets import PartnershipView, partnership_known, partnerships, register_partnership, top_up
from ledger.errors import IdempotencyConflict, InvalidRequest, LedgerError
from schemas.ids import _ID_PATTERN, ID_MAX_LENGTH, ID_MIN_LENGTH

PartnershipIdPath = Annotated[
    str, Path(pattern=_ID_PATTERN, min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH, description="the partnership id")
]

router = APIRouter(tags=["budgets"])


def _partnership(view: PartnershipView) -> Partnership:
    balance = view.balance
    return Partnership(
        partnership_id=view.partnership_id,
        name=view.name,
        allocated_cents=balance.allocated_cents if balance else 0,
        held_cents=balance.held_cents if balance else 0,
        paid_cents=balance.paid_cents if balance else 0,
        available_cents=balance.available_cents if balance else 0,
    )


@router.get(
    "/budgets",
    response_model=list[Budget],
    operation_id="listBudgets",
    summary="Each partnership's budget: allocated, held, paid and available",
    responses={**example_response(examples.BUDGETS, "the budgets"), **problem_responses(401, 403, 503)},
)
async def budgets(api: Engine, permit: Annotated[Permit, permitted("listBudgets")]) -> list[Budget]:
    return [Budget.model_validate(b, from_attributes=True) for b in await api.ledger.partnership_balances()]


@router.get(
    "/partnerships",
    response_model=list[Partnership],
    operation_id="listPartnerships",
    summary="Every partnership with a record or a budget, with its name and balance",
    responses={**example_response(examples.PARTNERSHIPS, "the partnerships"), **problem_responses(401, 403, 503)},
)
async def list_partnerships(api: Engine, permit: Annotated[Permit, permitted("listPartnerships")]) -> list[Partnership]:
    return [_partnership(view) for view in await partnerships(api.pool)]


@router.put(
    "/partnerships/{partnership_id}",
    response_model=Partnership,
    status_code=201,
    operation_id="registerPartnership",
    summary="Create a partnership's record (seeding), or rename it; its budget comes with top-ups",
    responses={
        **example_response(examples.PARTNERSHIP_SAVED, "created", 201),
        200: {
            "model": Partnership,
            "description": "renamed (the record existed)",
            "content": {JSON: {"example": examples.PARTNERSHIP_SAVED}},
        },
        **problem_responses(401, 403, 413, 415, 422, 503),
    },
)
async def put_partnership(
    partnership_id: PartnershipIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("registerPartnership")],
    body: Annotated[
        RegisterPartnershipInput, Depends(StrictBody(RegisterPartnershipInput, examples.PARTNERSHIP_RECORD))
    ],
    response: Response,
) -> Partnership:
    created = await register_partnership(api.pool, partnership_id, body.name)
    if not created:
        response.status_code = 200
    view = next(v for v in await partnerships(api.pool) if v.partnership_id == partnership_id)
    return _partnership(view)


@router.post(
    "/partnerships/{partnership_id}/top-ups",
    response_model=TopUp,
    status_code=201,
    operation_id="topUpBudget",
    summary="Top up a partnership's budget from the programme, then offer the money to its waitlist",
    responses={
        **example_response(examples.TOPPED_UP, "booked and offered to the waitlist", 201),
        200: {
            "model": TopUp,
            "description": "this reference had booked this top-up already: nothing new booked",
            "content": {JSON: {"example": {**examples.TOPPED_UP, "replayed": True}}},
        },
        **problem_responses(401, 403, 404, 409, 413, 415, 422, 503, 504),
    },
)
async def top_up_budget(
    partnership_id: PartnershipIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("topUpBudget")],
    body: Annotated[TopUpInput, Depends(StrictBody(TopUpInput, examples.TOP_UP))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if not await partnership_known(api.pool, partnership_id):
        # A typo must not create a budget nobody will ever spend: partnerships are registered first.
        raise not_found(
            "Partnership",
            "partnership_id",
            f"partnership_id {partnership_id!r}: no such partnership (register it with PUT /partnerships/{{id}})",
        )
    request = idempotency.Request(
        idempotency_key,
        permit.who.subject,
        "POST /partnerships/{partnership_id}/top-ups",
        partnership_id,
        body_sha256(body.model_dump(mode="json")),
    )

    async def book() -> Answer:
        try:
            async with engine_call(api):
                transfer = await top_up(
                    api.pool,
                    api.exchanges,
                    partnership_id=partnership_id,
                    amount_cents=body.amount_cents,
                    reference=body.reference,
                )
        except IdempotencyConflict:
            raise ProblemError(
                409,
                "Conflicting top-up",
                f"reference {body.reference!r} already booked a different top-up of {partnership_id!r}",
                [("reference", "already used for another amount")],
            ) from None
        except InvalidRequest as error:
            raise ProblemError(422, "Invalid input", str(error), [(error.field, error.reason)]) from None
        except LedgerError as error:
            raise ProblemError(409, "Ledger refused", str(error)) from None
        except RPCError as error:
            # The booking (if any) stands; the waitlist was not told. The same request again books nothing
            # more and tells it, so a retry is the remedy.
            raise ProblemError(
                503, "Engine unavailable", f"the waitlist was not told ({error.message}); send the same request again"
            ) from None
        booked = TopUp(
            partnership_id=partnership_id,
            amount_cents=transfer.amount_cents,
            reference=body.reference,
            transfer_id=transfer.id,
            replayed=transfer.replayed,
            offered_to_waitlist=True,
        )
        return Answer(200 if transfer.replayed else 201, booked.model_dump(mode="json"))

    return await idempotency.once(api.pool, request, api.request_deadline_s, book)
