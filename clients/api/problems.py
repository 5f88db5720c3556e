"""RFC 9457 problem documents: one `Problem` model, one OpenAPI component, one mapping from engine errors.

Every error the API answers is `application/problem+json` with `type`, `title`, `status`, `detail` and
`errors: [{field, message}]` naming each offending field. When the workflow itself refused a decision,
`refusal` carries its type (schemas.errors.Refusal) and `type` ends in that name, so a caller branches on
the same word whatever door it used (docs/adr/0009-rest-api.md, "Refusals").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clients.client import (
    DecisionRefused,
    DuplicateApplication,
    ExchangeClientError,
    ExchangeNotFound,
    InvalidInput,
)
from schemas.errors import Refusal

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://clusterxchange.example/problems/"
PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}

# What each refusal means to an HTTP caller. 409: the exchange is not in a state to take this (now, or
# any more). 403: this actor may not, whoever sends the request. 422: the request's content cannot be
# accepted as it stands, and sending it again unchanged will not help. AmendmentRefused is 422 even when
# the budget is what cannot cover the new dates: the caller's remedy is other dates, not waiting.
REFUSAL_STATUS: Mapping[Refusal, int] = {
    Refusal.WRONG_STAGE: 409,
    Refusal.ALREADY_RECORDED: 409,
    Refusal.DUPLICATE_APPLICATION: 409,
    Refusal.NOT_ALLOWED: 403,
    Refusal.INVALID_INPUT: 422,
    Refusal.AMENDMENT_REFUSED: 422,
    Refusal.EVIDENCE_REFUSED: 422,
}
# A refusal without a known type (an exchange that has ended answers with none) is a conflict with state.
UNTYPED_REFUSAL_STATUS = 409


class FieldError(BaseModel):
    field: str = Field(description="the offending field, dotted (`visitor.latitude`), or a header or parameter name")
    message: str = Field(description="the rule it breaks, as a sentence")


class Problem(BaseModel):
    """An RFC 9457 problem document; `errors` names each offending field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": f"{PROBLEM_TYPE_BASE}refusals/WrongStage",
                    "title": "Decision refused",
                    "status": 409,
                    "detail": "validate_report: no report has been submitted yet",
                    "errors": [],
                    "refusal": "WrongStage",
                }
            ]
        }
    )

    type: str = Field(default="about:blank", description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    refusal: Refusal | None = Field(
        default=None, description="when the workflow refused the decision: its refusal type (schemas/errors.py)"
    )


def problem_type(title: str) -> str:
    return f"{PROBLEM_TYPE_BASE}{title.lower().replace(' ', '-')}"


class ProblemError(Exception):
    """Raised anywhere in a request; the app's handler answers it as a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[tuple[str, str]] | None = None,
        *,
        type_uri: str = "",
        refusal: Refusal | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=type_uri or problem_type(title),
            title=title,
            status=status,
            detail=detail,
            errors=[FieldError(field=f, message=m) for f, m in errors or []],
            refusal=refusal,
        )
        self.headers: dict[str, str] = dict(headers or {})


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def invalid(errors: list[tuple[str, str]]) -> ProblemError:
    fields = ", ".join(dict.fromkeys(f for f, _ in errors))
    return ProblemError(422, "Invalid input", f"invalid input in: {fields}", errors)


def forbidden(detail: str, field: str | None = None, message: str = "not you") -> ProblemError:
    return ProblemError(403, "Forbidden", detail, [(field, message)] if field else None)


def not_found(what: str, field: str, detail: str) -> ProblemError:
    return ProblemError(404, f"{what} not found", detail, [(field, detail)])


def translate(error: ExchangeClientError, body: type[BaseModel] | None = None) -> ProblemError:
    """The problem for an ExchangeClient error; `body` is the request's model, to name a refused field."""
    if isinstance(error, InvalidInput):
        return invalid(error.errors)
    if isinstance(error, ExchangeNotFound):
        return not_found("Exchange", "application_id", str(error))
    if isinstance(error, DecisionRefused):
        return refused(error, body)
    if isinstance(error, DuplicateApplication):
        return ProblemError(
            409,
            "Duplicate application",
            str(error),
            [("application_id", str(error))],
            type_uri=f"{PROBLEM_TYPE_BASE}refusals/{Refusal.DUPLICATE_APPLICATION.value}",
            refusal=Refusal.DUPLICATE_APPLICATION,
        )
    return ProblemError(503, "Engine unavailable", str(error))


def refused(error: DecisionRefused, body: type[BaseModel] | None) -> ProblemError:
    """A refusal by the workflow: status from its type; the field named when the message starts with one."""
    refusal = _as_refusal(error.refusal)
    status = REFUSAL_STATUS[refusal] if refusal else UNTYPED_REFUSAL_STATUS
    message = str(error)
    # The validators phrase refusals as "<field>: <rule>" when a field is at fault ("party: HO already
    # signed"), and as "<update>: <rule>" when the stage is: only a prefix that is a field of the body counts.
    prefix, _, rest = message.partition(": ")
    named = body is not None and rest and prefix.split(".")[0] in body.model_fields
    return ProblemError(
        status,
        "Decision refused",
        message,
        [(prefix, rest)] if named else None,
        type_uri=f"{PROBLEM_TYPE_BASE}refusals/{refusal.value if refusal else 'Refused'}",
        refusal=refusal,
    )


def _as_refusal(value: str | None) -> Refusal | None:
    try:
        return Refusal(value) if value else None
    except ValueError:
        return None


# The OpenAPI side: each operation lists its error statuses, every one pointing at the one component.

_DESCRIPTIONS: Mapping[int, str] = {
    401: "missing or unknown bearer token",
    403: "the token's principal may not do this, not on this exchange, not as this actor or not for this party "
    "(no `refusal`); or the workflow refused this actor (refusal NotAllowed)",
    404: "no such resource; `errors` names the id",
    405: "this path does not take that method (any operation's path answers so); `Allow` lists the ones it takes",
    409: "refused by the workflow (WrongStage, AlreadyRecorded, DuplicateApplication), conflicting with what exists, "
    "or a request with the same Idempotency-Key still in flight",
    413: "the body is larger than this operation accepts",
    415: "the body is not JSON (send Content-Type: application/json)",
    422: "invalid input; `errors` names each field (refusals InvalidInput, AmendmentRefused, EvidenceRefused too); "
    "or an Idempotency-Key first used for another request",
    429: "too many requests: a principal's writes past CX_API_WRITE_RATE a minute, or an address's failed "
    "authentications past CX_API_AUTH_FAILURES in their window (any operation); `Retry-After` says when to retry",
    503: "Temporal or Postgres did not answer",
    504: "the engine (or the request as a whole) did not answer in time; the same request with the same "
    "Idempotency-Key applies it at most once",
}

_EXAMPLES: Mapping[int, Problem] = {
    401: Problem(
        type=problem_type("Unauthorized"),
        title="Unauthorized",
        status=401,
        detail="a bearer token is required",
        errors=[FieldError(field="Authorization", message="expected 'Bearer <token>' with a configured token")],
    ),
    403: Problem(
        type=problem_type("Forbidden"),
        title="Forbidden",
        status=403,
        detail="actor_id must be 'applicant-ola': you may act only as yourself",
        errors=[FieldError(field="actor_id", message="not you")],
    ),
    404: Problem(
        type=problem_type("Exchange not found"),
        title="Exchange not found",
        status=404,
        detail="application_id 'app-2026-0042': no such exchange",
        errors=[FieldError(field="application_id", message="application_id 'app-2026-0042': no such exchange")],
    ),
    405: Problem(
        type=problem_type("Method not allowed"),
        title="Method not allowed",
        status=405,
        detail="Method Not Allowed",
    ),
    409: Problem(
        type=f"{PROBLEM_TYPE_BASE}refusals/AlreadyRecorded",
        title="Decision refused",
        status=409,
        detail="party: HO already signed (by ho-signatory)",
        errors=[FieldError(field="party", message="HO already signed (by ho-signatory)")],
        refusal=Refusal.ALREADY_RECORDED,
    ),
    413: Problem(
        type=problem_type("Content too large"),
        title="Content too large",
        status=413,
        detail="the body is larger than this operation accepts (1048576 bytes)",
        errors=[FieldError(field="body", message="at most 1048576 bytes")],
    ),
    415: Problem(
        type=problem_type("Unsupported media type"),
        title="Unsupported media type",
        status=415,
        detail="the body must be JSON, got Content-Type 'text/plain'",
        errors=[FieldError(field="Content-Type", message="expected application/json")],
    ),
    422: Problem(
        type=problem_type("Invalid input"),
        title="Invalid input",
        status=422,
        detail="invalid input in: amount_cents",
        errors=[FieldError(field="amount_cents", message="Input should be a valid integer")],
    ),
    429: Problem(
        type=problem_type("Too many requests"),
        title="Too many requests",
        status=429,
        detail="at most 120 writes a minute per principal",
        errors=[FieldError(field="Retry-After", message="wait 25 s before trying again")],
    ),
    503: Problem(
        type=problem_type("Engine unavailable"),
        title="Engine unavailable",
        status=503,
        detail="postgres: connection refused",
    ),
    504: Problem(
        type=problem_type("Engine timeout"),
        title="Engine timeout",
        status=504,
        detail="the engine did not answer within 10 s; the decision may still be applied: "
        "retry with the same Idempotency-Key",
        errors=[
            FieldError(
                field="Idempotency-Key",
                message="send the same request again with the same key: it is applied at most once",
            )
        ],
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, each a $ref to the shared Problem component."""
    return {status: _problem_response(status) for status in statuses}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": PROBLEM_SCHEMA_REF,
                "example": _EXAMPLES[status].model_dump(mode="json", exclude_none=True),
            }
        },
    }
    if status == 405:
        response["headers"] = {
            "Allow": {"description": "the methods this path takes, comma-separated", "schema": {"type": "string"}}
        }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
        }
    return response
