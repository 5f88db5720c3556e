"""Who a bearer token stands for: a static token of the configuration, or a signed token of the organisation's
sign-in (issue 16, item 3; ADR 0023).

One object per API process, built by the process from its Settings (workers/commands.py) and handed to the
app: the Authenticate guard and the web app's sign-in ask it. A token shaped like a JWT (three dot-separated
parts) is checked by the OIDC verifier when one is configured; every other token is looked up in the static
table (strength, expiry and rotation: clients/api/static_tokens.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from clients.api.auth import Principal
from clients.api.oidc import OidcVerifier, Unauthenticated
from clients.api.static_tokens import StaticTokens

__all__ = ["Identities", "Unauthenticated"]


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class Identities:
    """The static tokens and, when configured, the OIDC verifier."""

    def __init__(self, static: StaticTokens, oidc: OidcVerifier | None = None) -> None:
        self.static = static
        self.oidc = oidc

    @classmethod
    def of(cls, tokens: Mapping[str, Principal] | Identities) -> Identities:
        """Identities as given, or a fixed table of principals (tests build apps with a plain dict)."""
        return tokens if isinstance(tokens, Identities) else cls(StaticTokens.fixed(tokens))

    async def principal(self, token: str) -> Principal:
        """The principal `token` stands for; Unauthenticated (with a reason safe to show) otherwise."""
        found = self.static.find(token)
        if found is not None:
            return found
        if self.oidc is not None and looks_like_jwt(token):
            return await self.oidc.principal(token)
        raise Unauthenticated("unknown or expired bearer token")
