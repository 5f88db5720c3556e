"""The REST API process's identities, rate limits and listening checks, from the one Settings (issue 16; ADR 0023).

`cx api` and `make run` build who a bearer token stands for here: the static tokens (CX_API_TOKENS, or
CX_API_TOKENS_FILE re-read when it changes), the OIDC verifier when CX_OIDC_ISSUER and CX_OIDC_AUDIENCE are
set, and the rate limits. Nothing here prints a token or a secret.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime

from clients.api.auth import Principal, TokenConfigError
from clients.api.identities import Identities
from clients.api.oidc import OidcConfig, OidcVerifier
from clients.api.rate_limits import RateLimitSettings
from clients.api.static_tokens import StaticToken, StaticTokens, parse_token_table
from workers.logging import get_logger
from workers.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def static_tokens(settings: Settings, dev_principals: Mapping[str, Principal] | None = None) -> StaticTokens:
    """CX_API_TOKENS_FILE (re-read when it changes), else CX_API_TOKENS, else `dev_principals` (make run's
    users of one run); TokenConfigError when none is given."""
    if settings.api_tokens_file is not None:
        log = get_logger("cx.api")
        return StaticTokens.from_file(
            settings.api_tokens_file, on_reload_error=lambda reason: log.error("tokens not reloaded", reason=reason)
        )
    if settings.api_tokens is not None:
        return StaticTokens(parse_token_table(settings.api_tokens.get_secret_value()))
    if dev_principals is not None:
        return StaticTokens({token: StaticToken(who) for token, who in dev_principals.items()})
    raise TokenConfigError("CX_API_TOKENS or CX_API_TOKENS_FILE is not set: the API would know nobody")


def oidc_config(settings: Settings) -> OidcConfig | None:
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        return None
    return OidcConfig(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks_url=settings.oidc_jwks_url,
        role_claim=settings.oidc_role_claim,
        organisations_claim=settings.oidc_organisations_claim,
        partnerships_claim=settings.oidc_partnerships_claim,
    )


def identities(settings: Settings, dev_principals: Mapping[str, Principal] | None = None) -> Identities:
    """Who a bearer token stands for in this process (TokenConfigError naming what is missing or malformed)."""
    config = oidc_config(settings)
    return Identities(static_tokens(settings, dev_principals), OidcVerifier(config) if config else None)


def rate_limit_settings(settings: Settings) -> RateLimitSettings:
    return RateLimitSettings(
        writes_per_minute=settings.api_write_rate,
        auth_failures=settings.api_auth_failures,
        auth_failure_window_s=settings.api_auth_failure_window_s,
    )


def plain_http_warning(host: str) -> str | None:
    """A warning when the API would serve plain HTTP beyond this machine, or None on a loopback interface.

    Tokens and session cookies cross the network in the clear on plain HTTP: another interface needs a TLS
    terminator in front (docs/operations.md, "TLS termination").
    """
    if host.lower() in LOOPBACK_NAMES:
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    return (
        f"serving plain HTTP on {host}: bearer tokens and session cookies cross the network in the clear; "
        "put a TLS terminator in front (docs/operations.md, 'TLS termination') or listen on 127.0.0.1"
    )


def describe(settings: Settings, found: Identities, host: str) -> list[str]:
    """`cx api --check-config`'s lines about identities and limits (counts and names, never a token)."""
    entries = found.static.entries().values()
    roles = sorted({entry.principal.role for entry in entries})
    now = datetime.now(UTC)
    expired = sum(not entry.live(now) for entry in entries)
    source = "CX_API_TOKENS_FILE (re-read when it changes)" if settings.api_tokens_file else "CX_API_TOKENS"
    limits = rate_limit_settings(settings)
    lines = [
        f"tokens     {len(entries)} from {source} ({', '.join(roles)})" + (f", {expired} expired" if expired else ""),
        f"oidc       {settings.oidc_issuer} for {settings.oidc_audience}" if found.oidc else "oidc       off",
        f"limits     {limits.writes_per_minute or 'unlimited'} writes/min per principal, "
        f"{limits.auth_failures or 'unlimited'} failed authentications per {limits.auth_failure_window_s} s "
        "per address",
    ]
    warning = plain_http_warning(host)
    return [*lines, f"warning    {warning}"] if warning else lines
