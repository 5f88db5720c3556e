"""E-mail over a real aiosmtpd relay that offers STARTTLS with a certificate made in the test (trustme) and
requires AUTH: delivered with the right password, refused and recorded with a wrong one, and never sent to a
relay that does not offer STARTTLS unless CX_SMTP_TLS=none says so (ADR 0019)."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from activities.outbox import enqueue
from tests.outbox.receivers import RecordingHandler, make_dispatcher
from workers.devstack import free_port

USERNAME = "cx-dispatcher"
PASSWORD = "relay-password-for-tests"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself (its default, handled=True, answers nothing).
    return AuthResult(success=ok, handled=False)


@contextmanager
def relay(handler: RecordingHandler, **options: Any) -> Iterator[int]:
    """An aiosmtpd relay on 127.0.0.1 (a free port) with `options`, stopped when the block ends."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest_asyncio.fixture
async def email_id(pool: asyncpg.Pool) -> int:
    """A notification e-mail in the outbox, committed."""
    async with pool.acquire() as conn, conn.transaction():
        return await enqueue(
            conn,
            dedup_key=f"notification:test:{uuid.uuid4().hex[:8]}",
            topic="notification",
            channel="email",
            destination="vop@example.org",
            payload={"subject": "Report due", "text": "Please submit the closing report."},
        )


async def _attempt_once(pool: asyncpg.Pool, port: int, **smtp: Any) -> None:
    dispatcher = make_dispatcher(pool, smtp_host="127.0.0.1", smtp_port=port, base_backoff_s=60.0, **smtp)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()


async def _row(pool: asyncpg.Pool, outbox_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT attempts, delivered_at IS NOT NULL AS delivered, dead_at IS NOT NULL AS dead, last_error "
        "FROM outbox WHERE id = $1",
        outbox_id,
    )
    assert row is not None
    return row


def _starttls_relay(handler: RecordingHandler, ca: trustme.CA) -> Any:
    return relay(
        handler,
        tls_context=_server_context(ca),
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
        auth_require_tls=True,
    )


async def test_email_goes_over_starttls_with_auth(
    pool: asyncpg.Pool, email_id: int, ca: trustme.CA, ca_file: Path
) -> None:
    """With the relay's CA trusted and the right credentials, the message is delivered over STARTTLS after AUTH."""
    handler = RecordingHandler()
    with _starttls_relay(handler, ca) as port:
        await _attempt_once(pool, port, smtp_ca_file=ca_file, smtp_username=USERNAME, smtp_password=SecretStr(PASSWORD))
    [message] = handler.messages
    assert message["Subject"] == "Report due"
    assert (await _row(pool, email_id))["delivered"]


async def test_a_wrong_password_leaves_the_row_undelivered_with_the_error(
    pool: asyncpg.Pool, email_id: int, ca: trustme.CA, ca_file: Path
) -> None:
    """AUTH refused (535): nothing is sent, the row stays pending (to retry once the secret is fixed) with the error."""
    handler = RecordingHandler()
    with _starttls_relay(handler, ca) as port:
        await _attempt_once(pool, port, smtp_ca_file=ca_file, smtp_username=USERNAME, smtp_password=SecretStr("wrong"))
    assert handler.messages == []
    row = await _row(pool, email_id)
    assert (row["attempts"], row["delivered"], row["dead"]) == (1, False, False)
    assert row["last_error"].startswith("SMTPAuthenticationError")
    assert "535" in row["last_error"]
    assert "wrong" not in row["last_error"]


async def test_an_untrusted_certificate_is_refused(pool: asyncpg.Pool, email_id: int, ca: trustme.CA) -> None:
    """Without the relay's CA the certificate does not verify: nothing (no password, no message) is sent."""
    handler = RecordingHandler()
    with _starttls_relay(handler, ca) as port:
        await _attempt_once(pool, port, smtp_username=USERNAME, smtp_password=SecretStr(PASSWORD))
    assert handler.messages == []
    row = await _row(pool, email_id)
    assert not row["delivered"]
    assert "CERTIFICATE_VERIFY_FAILED" in row["last_error"] or "certificate" in row["last_error"].lower()


async def test_a_relay_without_starttls_gets_nothing_unless_tls_none_is_chosen(
    pool: asyncpg.Pool, email_id: int
) -> None:
    """STARTTLS is required by default: a plain relay is refused; CX_SMTP_TLS=none (a local relay) sends in clear."""
    handler = RecordingHandler()
    with relay(handler) as port:
        await _attempt_once(pool, port)  # smtp_tls defaults to starttls
        row = await _row(pool, email_id)
        assert not row["delivered"]
        assert "STARTTLS extension not supported" in row["last_error"]
        assert handler.messages == []
        await pool.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", email_id)
        await _attempt_once(pool, port, smtp_tls="none")
    assert len(handler.messages) == 1
    assert (await _row(pool, email_id))["delivered"]


async def test_implicit_tls(pool: asyncpg.Pool, email_id: int, ca: trustme.CA, ca_file: Path) -> None:
    """CX_SMTP_TLS=tls speaks TLS from the first byte (port 465 style) and verifies the relay's certificate."""
    handler = RecordingHandler()
    with relay(handler, ssl_context=_server_context(ca)) as port:
        await _attempt_once(pool, port, smtp_tls="tls", smtp_ca_file=ca_file)
    assert len(handler.messages) == 1
    assert (await _row(pool, email_id))["delivered"]
