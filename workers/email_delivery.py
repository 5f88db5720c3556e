"""E-mail delivery over SMTP with aiosmtplib: STARTTLS required by default, AUTH when configured, bounded.

CX_SMTP_TLS chooses the transport: `starttls` (the default: the relay must offer STARTTLS and its certificate
must verify, or nothing is sent, so a password or a message never crosses the network in clear), `tls`
(implicit TLS, port 465 style) or `none` (a local relay on the same host or pod only). CX_SMTP_USERNAME and
CX_SMTP_PASSWORD log in after the TLS upgrade; CX_SMTP_CA_FILE trusts a private CA. ADR 0019.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_DEFAULT_POLICY
from email.utils import formatdate
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import SecretStr

from activities.outbox import OutboxMessage
from workers.webhook_delivery import DeliveryFailed

SmtpTls = Literal["starttls", "tls", "none"]
SMTP_POLICY = SMTP_DEFAULT_POLICY.clone(max_line_length=998)


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how e-mails are sent (from the one Settings through DispatcherConfig)."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "clusterxchange@localhost"
    tls: SmtpTls = "starttls"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        check_smtp_auth(self.tls, self.username, self.password)


def check_smtp_auth(tls: SmtpTls, username: str | None, password: SecretStr | None) -> None:
    """Refuse AUTH settings that cannot work or would leak: half a login, or a password over a clear connection."""
    if (username is None) != (password is None):
        raise ValueError("CX_SMTP_USERNAME and CX_SMTP_PASSWORD: set both (SMTP AUTH) or neither")
    if password is not None and tls == "none":
        raise ValueError("CX_SMTP_PASSWORD with CX_SMTP_TLS=none would send the password in clear: use starttls")


def email_message_id(dedup_key: str, sender: str) -> str:
    """A Message-ID that is the same for every delivery of one dedup key, so mail clients drop repeats.

    The key is hashed because a Message-ID allows fewer characters than a dedup key may hold.
    """
    domain = sender.rpartition("@")[2] or "clusterxchange.invalid"
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:32]}.outbox@{domain}>"


def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    """A plain-text e-mail: `subject` and `text` from the payload when given, else the payload itself."""
    subject = message.payload.get("subject")
    text = message.payload.get("text")
    # No folding below the RFC 5322 limit: a Message-ID folded onto its own line confuses some receivers.
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = sender
    email["To"] = message.destination
    email["Subject"] = subject if isinstance(subject, str) else f"ClusterXchange {message.topic}"
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = email_message_id(message.dedup_key, sender)
    email["X-CX-Dedup-Key"] = message.dedup_key
    email.set_content(text if isinstance(text, str) else json.dumps(message.payload, indent=2, sort_keys=True))
    return email


async def send_email(message: OutboxMessage, config: SmtpConfig, timeout_s: float) -> None:
    """Send one message; raise (aiosmtplib's errors, DeliveryFailed) when the relay does not take it."""
    smtp = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        timeout=timeout_s,
        use_tls=config.tls == "tls",
        # True, not None: None would fall back to plain text when the relay does not offer STARTTLS.
        start_tls=config.tls == "starttls",
        cert_bundle=str(config.ca_file) if config.ca_file else None,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
    )
    async with smtp:
        refused, _ = await smtp.send_message(build_email(message, config.sender))
    if refused:
        raise DeliveryFailed(f"SMTP refused recipients: {sorted(refused)}")
