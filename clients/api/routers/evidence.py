"""REPORTING's evidence over HTTP: upload a boarding pass or invoice (multipart) and list what was uploaded.

The same checks as `cx evidence add` (ledger/evidence.py `store_evidence`): the type is detected from
the content (PDF, PNG, JPEG; the file name and the part's Content-Type do not count), at most 10 MiB,
stored once by SHA-256. The answer is the `EvidenceItem` to put in `submit_report`.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import hashlib
from typing import Annotated, Any, Literal, cast, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from clients.api import examples, idempotency
from clients.api.access import actor_refusal
from clients.api.body import multipart_form, text_problems
from clients.api.context import Engine, Permit, authorise, permitted, require_exchange
from clients.api.idempotency import Answer, body_sha256
from clients.api.openapi import JSON, example_response
from clients.api.problems import ProblemError, forbidden, invalid, problem_responses
from clients.api.routers.exchanges import ApplicationIdPath, IdempotencyKey
from ledger.evidence import EvidenceRecord, list_evidence, store_evidence
from rules.evidence import EVIDENCE_KINDS, MAX_EVIDENCE_SIZE_BYTES, EvidenceRefused
from schemas.exchange import EvidenceItem

# The multipart envelope around the file (boundaries, part headers, the other fields) needs a little
# room beyond the file's own limit; a body past this is refused before it is read to the end.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = MAX_EVIDENCE_SIZE_BYTES + MULTIPART_OVERHEAD_BYTES
UPLOAD_PATH = r"/exchanges/[^/]+/evidence"  # the app's BodyLimit lets this route's bodies be this large
FORM_FIELD_MAX_BYTES = 4096
NAME_MAX_CHARS = 255
UPLOADED_BY_MAX_CHARS = 128

EvidenceKind = Literal["boarding_pass", "travel_invoice", "accommodation_invoice", "other"]
# Spelled out for the type checker; the contract's list (schemas/exchange.py EvidenceItem.kind) is the truth.
assert set(get_args(EvidenceKind)) == set(EVIDENCE_KINDS), "evidence kinds differ from the contract's"

# The form is read by the route itself, after the caller was authorised (FastAPI would parse File/Form
# parameters before any dependency runs, so a caller who may not upload would have their body parsed
# first): the document's schema is written here.
# What text_problems refuses in a form's text, as a JSON Schema pattern (a lone surrogate cannot be sent as UTF-8).
NO_NUL_PATTERN = "^[^\\u0000]*$"
UPLOAD_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "kind"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "the document: PDF, PNG or JPEG, at most 10 MiB"},
        "kind": {"type": "string", "enum": list(get_args(EvidenceKind)), "description": "what the document proves"},
        "name": {
            "type": "string",
            "maxLength": NAME_MAX_CHARS,
            "pattern": NO_NUL_PATTERN,
            "description": "the label in the report",
        },
        "uploaded_by": {
            "type": "string",
            "maxLength": UPLOADED_BY_MAX_CHARS,
            "pattern": NO_NUL_PATTERN,
            "description": "who uploads; default: the caller (only a party's service names another)",
        },
    },
}

router = APIRouter(tags=["evidence"])


def _text_field(form: Any, name: str, max_chars: int, problems: list[tuple[str, str]]) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append((name, "must be a text field, not a file"))
        return None
    if len(value) > max_chars:
        problems.append((name, f"at most {max_chars} characters"))
    return value


async def _read_upload(form: Any, permit: Permit) -> tuple[EvidenceKind, str, str, bytes]:
    """The form's fields checked (422 naming each), the uploader authorised (403), and the file's bytes."""
    problems: list[tuple[str, str]] = []
    file = form.get("file")
    if not isinstance(file, UploadFile):
        problems.append(("file", "Field required: the document as a file part"))
    kind = _text_field(form, "kind", 64, problems)
    if kind is None and not any(f == "kind" for f, _ in problems):
        problems.append(("kind", "Field required"))
    elif kind is not None and kind not in get_args(EvidenceKind):
        problems.append(("kind", f"Input should be one of {', '.join(get_args(EvidenceKind))}"))
    name = _text_field(form, "name", NAME_MAX_CHARS, problems)
    uploaded_by = _text_field(form, "uploaded_by", UPLOADED_BY_MAX_CHARS, problems)
    if problems:
        raise invalid(problems)
    assert isinstance(file, UploadFile), "checked above"
    assert kind is not None, "checked above"
    label = name or file.filename or "evidence"
    unstorable = text_problems({"name" if name else "file": label, "uploaded_by": uploaded_by or ""})
    if unstorable:
        raise invalid(unstorable)
    uploader = uploaded_by or permit.who.subject
    refusal = actor_refusal(permit.who, permit.cell, uploader)
    if refusal:
        raise forbidden(f"uploaded_by {refusal}", "uploaded_by", refusal)
    # One byte past the limit is enough to refuse; the rest of the file is never read into memory.
    data = await file.read(MAX_EVIDENCE_SIZE_BYTES + 1)
    return cast(EvidenceKind, kind), label, uploader, data


@router.post(
    "/exchanges/{application_id}/evidence",
    response_model=EvidenceItem,
    status_code=201,
    operation_id="uploadEvidence",
    summary="Upload one evidence file of the closing report; answers the EvidenceItem for submit_report",
    description=(
        "multipart/form-data: `file` (PDF, PNG or JPEG by content, at most 10 MiB), `kind`, optional `name` "
        "(the label in the report; default: the file name) and `uploaded_by` (default: the caller; only a "
        "party's service names someone else). The same bytes again answer 200 with the first item and store "
        "nothing new. The caller is authorised before the form is read."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": UPLOAD_FORM_SCHEMA,
                    "example": {"kind": "boarding_pass", "name": "boarding-pass.pdf", "file": "(the PDF's bytes)"},
                    "encoding": {"file": {"contentType": "application/pdf, image/png, image/jpeg"}},
                }
            },
        }
    },
    responses={
        **example_response(examples.EVIDENCE_ITEM, "stored: put this item in submit_report's evidence", 201),
        200: {
            "model": EvidenceItem,
            "description": "these bytes were uploaded for this exchange before: the first item",
            "content": {JSON: {"example": examples.EVIDENCE_ITEM}},
        },
        **problem_responses(401, 403, 404, 409, 413, 422, 503, 504),
    },
)
async def upload_evidence(
    application_id: ApplicationIdPath,
    api: Engine,
    permit: Annotated[Permit, permitted("uploadEvidence")],
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    await authorise(api, permit, application_id)
    await require_exchange(api, application_id)
    async with multipart_form(request, max_files=1, max_fields=3, max_part_size=FORM_FIELD_MAX_BYTES) as form:
        kind, label, uploader, data = await _read_upload(form, permit)
    sha256 = hashlib.sha256(data).hexdigest()
    fingerprint = body_sha256({"sha256": sha256, "kind": kind, "name": label, "uploaded_by": uploader})
    once = idempotency.Request(
        idempotency_key, permit.who.subject, "POST /exchanges/{application_id}/evidence", application_id, fingerprint
    )

    async def store() -> Answer:
        async with api.pool.acquire() as conn:
            seen = await conn.fetchval(
                "SELECT 1 FROM evidence_files WHERE sha256 = $1 AND application_id = $2", sha256, application_id
            )
            try:
                item = await store_evidence(
                    conn,
                    api.evidence_store,
                    application_id=application_id,
                    path_or_bytes=data,
                    name=label,
                    kind=kind,
                    uploaded_by=uploader,
                )
            except EvidenceRefused as error:
                status = 413 if error.field == "size_bytes" and len(data) > MAX_EVIDENCE_SIZE_BYTES else 422
                title = "Content too large" if status == 413 else "Evidence refused"
                raise ProblemError(status, title, str(error), [(error.field, error.message)]) from None
        return Answer(200 if seen else 201, item.model_dump(mode="json"))

    return await idempotency.once(api.pool, once, api.request_deadline_s, store)


@router.get(
    "/exchanges/{application_id}/evidence",
    response_model=list[EvidenceRecord],
    operation_id="listEvidence",
    summary="The evidence files uploaded for the exchange, oldest first",
    responses={
        **example_response(examples.EVIDENCE_RECORDS, "the uploads"),
        **problem_responses(401, 403, 404, 422, 503, 504),
    },
)
async def list_uploads(
    application_id: ApplicationIdPath, api: Engine, permit: Annotated[Permit, permitted("listEvidence")]
) -> list[EvidenceRecord]:
    await authorise(api, permit, application_id)
    await require_exchange(api, application_id)
    async with api.pool.acquire() as conn:
        return await list_evidence(conn, application_id)
