"""Bearer tokens from the organisation's sign-in: OIDC access or ID tokens (JWTs) checked against the issuer's keys.

Issue 16, item 3; ADR 0023. A token is accepted when it is signed with RS256 or ES256 by a key of the issuer's
JWKS (found by its `kid`), names the configured issuer and audience, and is within its `nbf`/`exp` (and not
issued in the future) give or take `leeway_s`. Its `sub` is the principal's subject; its role, organisations
and partnerships come from claims whose names are configured (`cx_role`, `cx_organisations`,
`cx_partnerships` by default). PyJWT does the cryptography; the algorithm is chosen by us from the key's own
type, never from the token's header alone, so `none`, HS256 signed with a public key or any other
confusion is refused before a signature is even computed.

The JWKS is fetched from `jwks_url` or, when none is configured, from the `jwks_uri` of the issuer's
discovery document; it is kept `keys_max_age_s` and refetched when a token names a `kid` it does not hold
(the issuer rotated its keys), at most once every `refetch_min_interval_s`, so a flood of made-up `kid`s
costs the issuer one request per interval, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from pydantic import ValidationError

from clients.api.auth import Principal

# The algorithm each key type signs with: the only two accepted (ADR 0023).
ALGORITHM_OF_KEY_TYPE: Mapping[str, str] = {"RSA": "RS256", "EC": "ES256"}
ACCEPTED_ALGORITHMS = frozenset(ALGORITHM_OF_KEY_TYPE.values())
# A JWKS or a discovery document is a few KiB; this only stops a runaway answer.
MAX_DOCUMENT_BYTES = 1024 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"
logger = logging.getLogger(__name__)


class Unauthenticated(Exception):
    """A token that names no principal; the message says why in words safe to show the caller."""


@dataclass(frozen=True)
class OidcConfig:
    """CX_OIDC_*: who issues the tokens, for whom, where its keys are, and which claims carry what."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    role_claim: str = "cx_role"
    organisations_claim: str = "cx_organisations"
    partnerships_claim: str = "cx_partnerships"
    leeway_s: float = 30.0
    keys_max_age_s: float = 3600.0
    refetch_min_interval_s: float = 30.0
    fetch_timeout_s: float = 5.0


class JwksCache:
    """The issuer's signing keys by `kid`, fetched on first use, kept for a while, refetched on rotation."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # the last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the JWKS was requested (tests, logs)

    async def key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, refetching the set when it is old or (rate limited) when the id is unknown."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._config.keys_max_age_s:
            await self._refresh(force=True)
        elif kid not in self._keys and now - self._fetched_at >= self._config.refetch_min_interval_s:
            await self._refresh(force=False)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            recent = self._fetched_at is not None and (
                self._clock() - self._fetched_at < self._config.refetch_min_interval_s
            )
            if recent and not force:
                return
            self._fetched_at = self._clock()
            self.fetches += 1
            try:
                keys = await self._fetch_keys()
            except (httpx.HTTPError, ValueError, Unauthenticated) as error:
                # The issuer is unreachable or answered nonsense: keep the keys already held (tokens they
                # signed stay valid); a token needing a new key is refused until the next attempt.
                logger.warning("OIDC keys not fetched from %s: %s", self._config.issuer, type(error).__name__)
                return
            self._keys = keys

    async def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        async with httpx.AsyncClient(transport=self._transport, timeout=self._config.fetch_timeout_s) as client:
            url = self._config.jwks_url or await self._discover(client)
            document = await _get_json(client, url)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
            key = _signing_key(entry)
            if key is not None:
                keys[entry["kid"]] = key
        return keys

    async def _discover(self, client: httpx.AsyncClient) -> str:
        document = await _get_json(client, self._config.issuer.rstrip("/") + DISCOVERY_PATH)
        if document.get("issuer") != self._config.issuer or not isinstance(document.get("jwks_uri"), str):
            raise Unauthenticated("the issuer's discovery document names another issuer or no jwks_uri")
        jwks_uri: str = document["jwks_uri"]
        return jwks_uri


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url}: answer larger than {MAX_DOCUMENT_BYTES} bytes")
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"{url}: not a JSON object")
    return document


def _signing_key(entry: object) -> jwt.PyJWK | None:
    """A JWK of the set that may verify our tokens: has a `kid`, is RSA or EC P-256, is for signatures."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    algorithm = ALGORITHM_OF_KEY_TYPE.get(str(entry.get("kty")))
    if algorithm is None or entry.get("use", "sig") != "sig" or entry.get("alg", algorithm) != algorithm:
        return None
    if entry["kty"] == "EC" and entry.get("crv") != "P-256":
        return None
    try:
        return jwt.PyJWK(entry, algorithm=algorithm)
    except jwt.PyJWTError:
        return None


class OidcVerifier:
    """Turns a signed token into a Principal, or raises Unauthenticated saying why."""

    def __init__(self, config: OidcConfig, keys: JwksCache | None = None) -> None:
        self.config = config
        self.keys = keys or JwksCache(config)

    async def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a well-formed JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise Unauthenticated(f"signature algorithm not accepted (only {', '.join(sorted(ACCEPTED_ALGORITHMS))})")
        key = await self.keys.key_for(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("the token's signing key (kid) is not one of the issuer's")
        if ALGORITHM_OF_KEY_TYPE.get(str(key.key_type)) != algorithm:
            raise Unauthenticated("the token's algorithm does not match its key's type")
        claims = self._claims(token, key, algorithm)
        return self._principal_of(claims)

    def _claims(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"the token has no {error.claim!r} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token's signature or claims are not valid") from None
        return claims

    def _principal_of(self, claims: Mapping[str, Any]) -> Principal:
        config = self.config
        if config.role_claim not in claims:
            raise Unauthenticated(f"the token has no {config.role_claim!r} claim: it names no role here")
        try:
            return Principal.model_validate(
                {
                    "subject": claims["sub"],
                    "role": claims[config.role_claim],
                    "organisations": claims.get(config.organisations_claim) or [],
                    "partnerships": claims.get(config.partnerships_claim) or [],
                }
            )
        except ValidationError as error:
            names = {"role": config.role_claim, "organisations": config.organisations_claim}
            names |= {"partnerships": config.partnerships_claim, "subject": "sub"}
            wrong = sorted({names.get(str(e["loc"][0]), str(e["loc"][0])) for e in error.errors() if e["loc"]})
            raise Unauthenticated(f"the token's claims name no principal here: {', '.join(wrong)}") from None
