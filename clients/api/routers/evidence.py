"""REPORTING's evidence over HTTP: upload a boarding pass or invoice (multipart) and list what was uploaded.

The same checks as `cx evidence add` (activities/evidence.py `store_evidence`): the type is detected from
the content (PDF, PNG, JPEG; the file name and the part's Content-Type do not count), at most 10 MiB,
stored once by SHA-256. The answer is the `EvidenceItem` to put in `submit_report`.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time.

import hashlib
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, File, Form, Response, UploadFile

from activities.evidence import (
    EVIDENCE_KINDS,
    MAX_EVIDENCE_SIZE_BYTES,
    EvidenceRecord,
    EvidenceRefused,
    list_evidence,
    store_evidence,
)
from clients.api import examples
from clients.api.auth import EVIDENCE_UPLOADERS, READERS, Principal
from clients.api.body import text_problems
from clients.api.context import Engine, act_as, allowed, require_access, require_exchange
from clients.api.openapi import JSON, example_response
from clients.api.problems import ProblemError, invalid, problem_responses
from clients.api.routers.exchanges import ApplicationIdPath
from schemas.exchange import EvidenceItem

# The multipart envelope around the file (boundaries, part headers, the other fields) needs a little
# room beyond the file's own limit; a body past this is refused before it is read to the end.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = MAX_EVIDENCE_SIZE_BYTES + MULTIPART_OVERHEAD_BYTES
UPLOAD_PATH = r"/exchanges/[^/]+/evidence"  # the app's BodyLimit lets this route's bodies be this large
FORM_FIELD_MAX_BYTES = 4096

EvidenceKind = Literal["boarding_pass", "travel_invoice", "accommodation_invoice", "other"]
# Spelled out for the type checker; the contract's list (schemas/exchange.py EvidenceItem.kind) is the truth.
assert set(get_args(EvidenceKind)) == set(EVIDENCE_KINDS), "evidence kinds differ from the contract's"

router = APIRouter(tags=["evidence"])


@router.post(
    "/exchanges/{application_id}/evidence",
    response_model=EvidenceItem,
    status_code=201,
    operation_id="uploadEvidence",
    summary="Upload one evidence file of the closing report; answers the EvidenceItem for submit_report",
    description=(
        "multipart/form-data: `file` (PDF, PNG or JPEG by content, at most 10 MiB), `kind`, optional `name` "
        "(the label in the report; default: the file name) and `uploaded_by` (officers and services only; "
        "default: the caller). The same bytes again answer 200 with the first item and store nothing new."
    ),
    form_limits={"max_files": 1, "max_fields": 3, "max_part_size": FORM_FIELD_MAX_BYTES},
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "example": {"kind": "boarding_pass", "name": "boarding-pass.pdf", "file": "(the PDF's bytes)"},
                    "encoding": {"file": {"contentType": "application/pdf, image/png, image/jpeg"}},
                }
            }
        }
    },
    responses={
        **example_response(examples.EVIDENCE_ITEM, "stored: put this item in submit_report's evidence", 201),
        200: {
            "model": EvidenceItem,
            "description": "these bytes were uploaded for this exchange before: the first item",
            "content": {JSON: {"example": examples.EVIDENCE_ITEM}},
        },
        **problem_responses(401, 403, 404, 413, 422, 503),
    },
)
async def upload_evidence(
    application_id: ApplicationIdPath,
    api: Engine,
    who: Annotated[Principal, allowed(EVIDENCE_UPLOADERS, "upload evidence")],
    file: Annotated[UploadFile, File(description="the document: PDF, PNG or JPEG, at most 10 MiB")],
    kind: Annotated[EvidenceKind, Form(description="what the document proves")],
    response: Response,
    name: Annotated[str | None, Form(max_length=255, description="the label in the report")] = None,
    uploaded_by: Annotated[str | None, Form(max_length=128, description="who uploads; default: the caller")] = None,
) -> EvidenceItem:
    label = name or file.filename or "evidence"
    unstorable = text_problems({"name" if name else "file": label, "uploaded_by": uploaded_by or ""})
    if unstorable:
        raise invalid(unstorable)
    uploader = uploaded_by or who.subject
    act_as(who, "uploaded_by", uploader)
    await require_access(api, who, application_id)
    await require_exchange(api, application_id)
    # One byte past the limit is enough to refuse; the rest of the file is never read into memory.
    data = await file.read(MAX_EVIDENCE_SIZE_BYTES + 1)
    async with api.pool.acquire() as conn:
        seen = await conn.fetchval(
            "SELECT 1 FROM evidence_files WHERE sha256 = $1 AND application_id = $2",
            hashlib.sha256(data).hexdigest(),
            application_id,
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
    if seen:
        response.status_code = 200
    return item


@router.get(
    "/exchanges/{application_id}/evidence",
    response_model=list[EvidenceRecord],
    operation_id="listEvidence",
    summary="The evidence files uploaded for the exchange, oldest first",
    responses={
        **example_response(examples.EVIDENCE_RECORDS, "the uploads"),
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def list_uploads(
    application_id: ApplicationIdPath, api: Engine, who: Annotated[Principal, allowed(READERS, "read exchanges")]
) -> list[EvidenceRecord]:
    await require_access(api, who, application_id)
    await require_exchange(api, application_id)
    async with api.pool.acquire() as conn:
        return await list_evidence(conn, application_id)
