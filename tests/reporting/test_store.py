"""The evidence store against a real Postgres: accepted types with the right digest and size, idempotent
uploads stored once, refusals that name the field and the rule, and uploads only for a started exchange."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from ledger.evidence import ApplicationUnknown, list_evidence, store_evidence
from ledger.evidence_store import EvidenceDamaged, EvidenceNotStored, EvidenceStore, FileEvidenceStore
from rules.evidence import MIB, EvidenceLimits, EvidenceRefused, check_evidence
from schemas.exchange import EvidenceItem
from schemas.stages import Stage
from tests.factories import application, project
from tests.reporting.documents import jpeg, pdf, png, pypdf_pdf
from workers.evidence_store import open_evidence_store
from workers.settings import Settings


def progressive_jpeg(tag: str) -> bytes:
    return jpeg(tag, progressive=True)


def unique_tag() -> str:
    return uuid.uuid4().hex[:10]


async def started(pool: asyncpg.Pool, stage: Stage = Stage.REPORTING) -> str:
    """The id of an exchange that exists: its read-model row written by the projection activity, as the
    workflow writes it (evidence is refused for an application that started no exchange)."""
    app = application()
    await project(pool, app, stage)
    return app.application_id


async def upload(
    conn: PoolConnectionProxy, store: EvidenceStore, application_id: str, data: bytes, kind: str = "boarding_pass"
) -> EvidenceItem:
    """Upload `data` as `pass.pdf` by visitor `v`: the parts of an upload that most tests do not vary."""
    return await store_evidence(
        conn, store, application_id=application_id, path_or_bytes=data, name="pass.pdf", kind=kind, uploaded_by="v"
    )


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("make", "media_type", "file_name"),
    [
        (pdf, "application/pdf", "pass.pdf"),
        (pypdf_pdf, "application/pdf", "invoice.pdf"),
        (png, "image/png", "invoice.png"),
        (jpeg, "image/jpeg", "hotel.jpg"),
        (progressive_jpeg, "image/jpeg", "scan.jpg"),
    ],
)
async def test_pdf_png_and_jpeg_are_stored_with_their_sha256_and_size(
    pg_pool: asyncpg.Pool, tmp_path: Path, make: Callable[[str], bytes], media_type: str, file_name: str
) -> None:
    """A PDF (written by hand, and by pypdf), a PNG and a JPEG (baseline and progressive) are accepted, stored
    at <root>/<sha[:2]>/<sha> and recorded with the right SHA-256, size and detected media type."""
    application_id, data = await started(pg_pool), make(unique_tag())
    path = tmp_path / file_name
    path.write_bytes(data)
    store = FileEvidenceStore(tmp_path / "evidence")
    async with pg_pool.acquire() as conn:
        item = await store_evidence(
            conn,
            store,
            application_id=application_id,
            path_or_bytes=path,
            name=file_name,
            kind="travel_invoice",
            uploaded_by="visitor-1",
        )
        records = await list_evidence(conn, application_id)
    digest = hashlib.sha256(data).hexdigest()
    assert item == EvidenceItem(name=file_name, kind="travel_invoice", sha256=digest, size_bytes=len(data))
    assert (tmp_path / "evidence" / digest[:2] / digest).read_bytes() == data
    [record] = records
    assert (record.media_type, record.size_bytes, record.uploaded_by) == (media_type, len(data), "visitor-1")
    assert record.as_item() == item


async def test_the_same_bytes_twice_make_one_record_and_one_file(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Uploading the same bytes twice (even under another name) returns the first record and stores one file."""
    application_id, data = await started(pg_pool), pdf(unique_tag())
    store = FileEvidenceStore(tmp_path)
    async with pg_pool.acquire() as conn:
        first = await store_evidence(
            conn,
            store,
            application_id=application_id,
            path_or_bytes=data,
            name="pass.pdf",
            kind="boarding_pass",
            uploaded_by="visitor-1",
        )
        again = await store_evidence(
            conn,
            store,
            application_id=application_id,
            path_or_bytes=data,
            name="copy.pdf",
            kind="boarding_pass",
            uploaded_by="visitor-1",
        )
        rows = await conn.fetchval("SELECT count(*) FROM evidence_files WHERE application_id = $1", application_id)
    assert again == first
    assert first.name == "pass.pdf"
    assert rows == 1
    assert files_in(tmp_path) == [store.path_for(first.sha256)]


async def test_the_same_bytes_for_another_application_are_refused(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """A document already evidence of one application is refused for another, naming the field `file`."""
    data = pdf(unique_tag())
    store = FileEvidenceStore(tmp_path)
    first, second = await started(pg_pool), await started(pg_pool)
    async with pg_pool.acquire() as conn:
        await upload(conn, store, first, data)
        with pytest.raises(EvidenceRefused) as refused:
            await upload(conn, store, second, data)
    assert refused.value.field == "file"
    assert "another application" in refused.value.message


async def test_a_file_over_the_size_limit_is_refused_before_it_is_read(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """A 12.3 MiB file is refused on `size_bytes` with its size and the limit, and nothing is stored or recorded."""
    application_id = await started(pg_pool)
    big = tmp_path / "scan.pdf"
    with big.open("wb") as handle:
        handle.truncate(int(12.3 * MIB))  # sparse: proves the refusal comes from the size, not the content
    store = FileEvidenceStore(tmp_path / "evidence")
    async with pg_pool.acquire() as conn:
        with pytest.raises(EvidenceRefused) as refused:
            await store_evidence(
                conn,
                store,
                application_id=application_id,
                path_or_bytes=big,
                name="scan.pdf",
                kind="boarding_pass",
                uploaded_by="v",
            )
        assert await list_evidence(conn, application_id) == []
    assert refused.value.field == "size_bytes"
    assert "12.3 MiB, over the 10 MiB limit" in refused.value.message
    assert not (tmp_path / "evidence").exists()


def test_one_byte_over_the_limit_is_refused_in_bytes_and_the_limit_itself_is_accepted() -> None:
    """A real PDF of exactly the limit passes; one byte more (white space, which a PDF may end with) is
    refused, shown in bytes since it rounds to the limit."""
    limits = EvidenceLimits(max_size_bytes=10 * MIB)
    at_limit = pdf(unique_tag(), size_bytes=10 * MIB)
    assert check_evidence(at_limit, "a.pdf", "other", limits) == "application/pdf"
    with pytest.raises(EvidenceRefused) as refused:
        check_evidence(at_limit + b"\n", "a.pdf", "other", limits)
    assert refused.value.field == "size_bytes"
    assert "10,485,761 bytes, over the 10 MiB limit" in refused.value.message


@pytest.mark.parametrize(
    ("data", "name", "kind", "field", "words"),
    [
        (b"", "empty.pdf", "boarding_pass", "size_bytes", "is empty (0 bytes)"),
        (
            b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64,
            "boarding-pass.pdf",
            "boarding_pass",
            "media_type",
            "the content is not PDF, PNG or JPEG (it starts like a Windows executable); the name's .pdf does not count",
        ),
        (b"GIF89a....", "photo.png", "other", "media_type", "(it starts like a GIF image)"),
        (b"%PDF-1.7\n", "pass.pdf", "passport", "kind", "'passport' is not one of boarding_pass, travel_invoice"),
        (b"%PDF-1.7\n", "", "boarding_pass", "name", "must be 1 to 255 characters"),
        (b"%PDF-1.7\n", "pass\n.pdf", "boarding_pass", "name", "'pass\\n.pdf': "),
    ],
    ids=["empty", "disguised-executable", "gif", "unknown-kind", "no-name", "name-with-a-newline"],
)
async def test_refusals_name_the_field_and_the_rule(
    pg_pool: asyncpg.Pool, tmp_path: Path, data: bytes, name: str, kind: str, field: str, words: str
) -> None:
    """An empty file, a disguised executable, an unaccepted image type, an unknown kind, a missing name and a
    name that is not one line are each refused naming the field and the rule, with nothing stored or recorded."""
    application_id = await started(pg_pool)
    async with pg_pool.acquire() as conn:
        with pytest.raises(EvidenceRefused) as refused:
            await store_evidence(
                conn,
                FileEvidenceStore(tmp_path),
                application_id=application_id,
                path_or_bytes=data,
                name=name,
                kind=kind,
                uploaded_by="v",
            )
        assert await list_evidence(conn, application_id) == []
    assert refused.value.field == field
    assert words in refused.value.message, refused.value.message
    assert str(refused.value).startswith(f"{field}: ")
    assert files_in(tmp_path) == []


async def test_a_missing_file_and_a_bad_application_id_are_refused(pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    """A path that does not exist is refused on `file`, an invalid application id on `application_id`."""
    store = FileEvidenceStore(tmp_path)
    application_id = await started(pg_pool)
    async with pg_pool.acquire() as conn:
        with pytest.raises(EvidenceRefused) as missing:
            await store_evidence(
                conn,
                store,
                application_id=application_id,
                path_or_bytes=tmp_path / "nope.pdf",
                name="nope.pdf",
                kind="other",
                uploaded_by="v",
            )
        with pytest.raises(EvidenceRefused) as bad_id:
            await store_evidence(
                conn,
                store,
                application_id="../etc",
                path_or_bytes=pdf("x"),
                name="x.pdf",
                kind="other",
                uploaded_by="v",
            )
    assert missing.value.field == "file"
    assert "does not exist" in missing.value.message
    assert bad_id.value.field == "application_id"


async def test_evidence_for_an_application_that_started_no_exchange_is_refused(
    pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A valid PDF for an application id no exchange was started with is refused (`ApplicationUnknown`, field
    `application_id`): no row, no file. An exchange whose run has claimed its id, before its first projection,
    already counts as started."""
    store = FileEvidenceStore(tmp_path)
    never = f"app-never-{unique_tag()}"
    async with pg_pool.acquire() as conn:
        with pytest.raises(ApplicationUnknown) as refused:
            await upload(conn, store, never, pdf(unique_tag()))
        assert await list_evidence(conn, never) == []
    assert refused.value.field == "application_id"
    assert "no such exchange" in refused.value.message
    assert files_in(tmp_path) == []

    just_started = f"app-{unique_tag()}"
    await pg_pool.execute(  # a run's claim on its id, as admission writes it before anything else
        "INSERT INTO exchange_runs (application_id, workflow_id, run_id, started_at) VALUES ($1, $2, $3, now())",
        just_started,
        f"exchange:{just_started}",
        str(uuid.uuid4()),
    )
    async with pg_pool.acquire() as conn:
        item = await upload(conn, store, just_started, pdf(unique_tag()))
        assert [r.sha256 for r in await list_evidence(conn, just_started)] == [item.sha256]


async def test_a_damaged_copy_in_the_store_is_replaced_atomically(tmp_path: Path) -> None:
    """A stored copy that no longer hashes to its name is refused on read and rewritten by the next put of
    the same bytes, and no temporary file is left behind."""
    store = FileEvidenceStore(tmp_path)
    data = png(unique_tag())
    digest = await store.put(data)
    assert await store.get(digest) == data
    store.path_for(digest).write_bytes(b"damaged")
    with pytest.raises(EvidenceDamaged, match="hashes to"):
        await store.get(digest)
    assert await store.put(data) == digest
    assert await store.get(digest) == data
    assert files_in(tmp_path) == [store.path_for(digest)]


async def test_a_copy_never_stored_is_named_so(tmp_path: Path) -> None:
    """Reading an address with nothing stored raises EvidenceNotStored; `exists` says no without raising."""
    store = FileEvidenceStore(tmp_path)
    assert not await store.exists("a" * 64)
    with pytest.raises(EvidenceNotStored, match="not in the store"):
        await store.get("a" * 64)
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        await store.get("../../etc/passwd")


def test_limits_refuse_a_media_type_that_cannot_be_detected() -> None:
    """Limits naming a type the detector does not know are a configuration error, not a silent never-match."""
    with pytest.raises(ValueError, match="allowed_media_types"):
        EvidenceLimits(allowed_media_types=("image/gif",))
    png_only = EvidenceLimits(allowed_media_types=("image/png",))
    with pytest.raises(EvidenceRefused, match=r"the content is not PNG \(it is PDF\)"):
        check_evidence(pdf("x"), "a.pdf", "other", png_only)


def test_the_store_root_is_cx_evidence_dir_else_under_the_state_dir(tmp_path: Path) -> None:
    """`CX_EVIDENCE_DIR` wins; without it the store is `<CX_STATE_DIR>/evidence`."""
    settings = Settings.from_env({"CX_STATE_DIR": str(tmp_path / "state")})
    store = open_evidence_store(settings)
    assert isinstance(store, FileEvidenceStore)
    assert store.root == tmp_path / "state" / "evidence"
    chosen = Settings.from_env(
        {"CX_STATE_DIR": str(tmp_path / "state"), "CX_EVIDENCE_DIR": str(tmp_path / "elsewhere")}
    )
    chosen_store = open_evidence_store(chosen)
    assert isinstance(chosen_store, FileEvidenceStore)
    assert chosen_store.root == tmp_path / "elsewhere"
