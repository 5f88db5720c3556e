"""Evidence over HTTP: the same type, size and hash checks as `cx evidence add`, by the right people only."""

from __future__ import annotations

import hashlib

import httpx

from rules.evidence import MAX_EVIDENCE_SIZE_BYTES
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    OPS,
    OTHER_APPLICANT,
    PARTY_SERVICE,
    SERVICE,
    auth,
    body,
    fields,
    officer_of,
    pdf,
    recorded,
)
from tests.reporting.documents import png


async def started_by_the_applicant(api: httpx.AsyncClient, partnership: str) -> str:
    data = body(partnership, submitted_by=APPLICANT_SUBJECT)
    started = await api.post("/exchanges", json=data, headers=auth(APPLICANT))
    assert started.status_code == 201, started.text
    # Evidence belongs to a started exchange: the upload checks that the exchange is on record.
    await recorded(api, APPLICANT, data["application_id"])
    return str(data["application_id"])


async def upload(
    api: httpx.AsyncClient,
    app_id: str,
    token: str | None,
    content: bytes,
    filename: str = "boarding-pass.pdf",
    **form: str,
) -> httpx.Response:
    """POST one boarding pass as multipart/form-data, the way a browser or curl -F sends it."""
    return await api.post(
        f"/exchanges/{app_id}/evidence",
        files={"file": (filename, content, "application/pdf")},
        data={"kind": "boarding_pass", **form},
        headers=auth(token) if token else {},
    )


async def test_an_upload_is_checked_stored_once_and_listed(api: httpx.AsyncClient, partnership: str) -> None:
    """A PDF by content is stored by SHA-256 (201), the same bytes again answer the same item (200), both listed."""
    app_id = await started_by_the_applicant(api, partnership)
    content = pdf(f"{app_id} boarding pass")
    first = await upload(api, app_id, APPLICANT, content)
    assert first.status_code == 201, first.text
    item = first.json()
    assert item == {
        "name": "boarding-pass.pdf",
        "kind": "boarding_pass",
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
    }
    again = await upload(api, app_id, APPLICANT, content, "renamed.pdf")
    assert again.status_code == 200, "the first record stands, first name included"
    assert again.json() == item, "the first record stands, first name included"
    invoice = await api.post(
        f"/exchanges/{app_id}/evidence",
        files={"file": ("hotel.png", png(app_id), "image/png")},
        data={"kind": "accommodation_invoice", "name": "Hotel invoice"},
        headers=auth(OFFICER),
    )
    assert invoice.status_code == 201
    assert invoice.json()["name"] == "Hotel invoice"
    listed = await api.get(f"/exchanges/{app_id}/evidence", headers=auth(APPLICANT))
    assert listed.status_code == 200
    records = listed.json()
    assert [(r["sha256"], r["media_type"], r["uploaded_by"]) for r in records] == [
        (item["sha256"], "application/pdf", APPLICANT_SUBJECT),
        (invoice.json()["sha256"], "image/png", officer_of(partnership)),
    ]


async def test_the_content_decides_the_type_and_the_size_is_limited(api: httpx.AsyncClient, partnership: str) -> None:
    """A program named .pdf, an empty file, an unknown kind and a file past 10 MiB are refused, naming the field."""
    app_id = await started_by_the_applicant(api, partnership)
    path = f"/exchanges/{app_id}/evidence"
    disguised = await upload(api, app_id, APPLICANT, b"MZ\x90\x00 not a pdf")
    assert disguised.status_code == 422
    assert fields(disguised) == ["media_type"]
    assert "Windows executable" in disguised.json()["detail"]
    empty = await upload(api, app_id, APPLICANT, b"")
    assert empty.status_code == 422
    assert fields(empty) == ["size_bytes"]
    wrong_kind = await api.post(
        path,
        files={"file": ("a.pdf", pdf("kind"), "application/pdf")},
        data={"kind": "selfie"},
        headers=auth(APPLICANT),
    )
    assert wrong_kind.status_code == 422
    assert fields(wrong_kind) == ["kind"]
    just_over = pdf("big") + b"0" * (MAX_EVIDENCE_SIZE_BYTES - len(pdf("big")) + 1)
    over = await upload(api, app_id, APPLICANT, just_over)
    assert over.status_code == 413, over.text
    assert fields(over) == ["size_bytes"], over.text
    far_over = await upload(api, app_id, APPLICANT, just_over + b"0" * (2 * 1024 * 1024))
    assert far_over.status_code == 413
    assert fields(far_over) == ["body"]
    nul_label = await upload(api, app_id, APPLICANT, pdf("nul"), name="pass\x00.pdf")
    assert nul_label.status_code == 422
    assert fields(nul_label) == ["name"]
    missing_file = await api.post(path, data={"kind": "other"}, files={}, headers=auth(APPLICANT))
    assert missing_file.status_code == 422
    listed = await api.get(path, headers=auth(OFFICER))
    assert listed.json() == [], "nothing refused was stored"


async def test_only_the_applicant_of_the_exchange_or_the_back_office_uploads(
    api: httpx.AsyncClient, partnership: str
) -> None:
    """Ops, or an applicant naming someone else as uploader: 403; another applicant, who may not even read the
    exchange, and an unknown exchange: 404 (issue 16: nothing learnt of exchanges beyond reach)."""
    app_id = await started_by_the_applicant(api, partnership)
    path = f"/exchanges/{app_id}/evidence"
    other = await upload(api, app_id, OTHER_APPLICANT, pdf("other"))
    assert other.status_code == 404
    ops = await upload(api, app_id, OPS, pdf("ops"))
    assert ops.status_code == 403
    posing = await upload(api, app_id, APPLICANT, pdf("posing"), uploaded_by="applicant-piet")
    assert posing.status_code == 403
    assert fields(posing) == ["uploaded_by"]
    programme = await upload(api, app_id, SERVICE, pdf("service"), uploaded_by="visitor-vera")
    assert programme.status_code == 403, "a programme service acts for no party"
    for_someone = await upload(api, app_id, PARTY_SERVICE, pdf("service"), uploaded_by="visitor-vera")
    assert for_someone.status_code == 201
    unknown = await upload(api, "app-never-started", OFFICER, pdf("unknown"))
    assert unknown.status_code == 404
    assert fields(unknown) == ["application_id"]
    anonymous = await upload(api, app_id, None, pdf("anonymous"))
    assert anonymous.status_code == 401
    records = (await api.get(path, headers=auth(OFFICER))).json()
    assert [r["uploaded_by"] for r in records] == ["visitor-vera"]
    assert (await api.get(path, headers=auth(OTHER_APPLICANT))).status_code == 404
