"""Bearer tokens of the organisation's sign-in (issue 16, item 3): OIDC tokens checked against a local issuer's
JWKS over HTTP, signed in the test, then used on the real API next to the static tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from clients.api import create_app
from clients.api.auth import Principal
from clients.api.identities import Identities
from clients.api.oidc import JwksCache, OidcConfig, OidcVerifier, Unauthenticated
from clients.api.static_tokens import StaticTokens
from clients.client import ExchangeClient
from tests.api.helpers import OFFICER, auth, token_table
from tests.api.jwks_server import AUDIENCE, Issuer, SigningKey, running_issuer


class Clock:
    """A monotonic clock the test moves by hand (the JWKS refetch interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rsa_key() -> SigningKey:
    return SigningKey.rsa()


@pytest.fixture
def issuer(rsa_key: SigningKey) -> Iterator[Issuer]:
    with running_issuer(rsa_key, SigningKey.ec()) as running:
        yield running


def verifier_of(issuer: Issuer, clock: Clock | None = None, **config: object) -> OidcVerifier:
    settings = OidcConfig(issuer=issuer.url, audience=AUDIENCE, **config)  # type: ignore[arg-type]
    return OidcVerifier(settings, JwksCache(settings, clock=clock or Clock()))


async def refused(verifier: OidcVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.principal(token)
    return str(caught.value)


async def test_a_valid_token_names_its_principal_from_its_claims(issuer: Issuer, rsa_key: SigningKey) -> None:
    """An RS256 token and an ES256 token of the issuer (keys found through its discovery document) give the
    principal of `sub` and the cx_* claims; claim names are configurable."""
    verifier = verifier_of(issuer)
    token = issuer.token(rsa_key, cx_organisations=["org-a"], cx_partnerships=["p-a"], cx_role="applicant")
    assert await verifier.principal(token) == Principal(
        subject="oidc-officer-olga",
        role="applicant",
        organisations=frozenset({"org-a"}),
        partnerships=frozenset({"p-a"}),
    )
    ec_key = issuer.published[1]
    assert (await verifier.principal(issuer.token(ec_key))).role == "officer"
    renamed = verifier_of(issuer, role_claim="groups_role")
    assert (await renamed.principal(issuer.token(rsa_key, groups_role="ops", cx_role=None))).role == "ops"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "expired"),
        ({"aud": "another-application"}, "another audience"),
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"cx_role": None}, "'cx_role'"),
        ({"cx_role": "king"}, "cx_role"),
        ({"exp": None}, "'exp'"),
        ({"nbf": 4_000_000_000}, "not valid yet"),
        ({"iat": 4_000_000_000}, "not valid yet"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "no-role", "unknown-role", "no-exp", "nbf-future", "iat-future"],
)
async def test_tokens_outside_their_terms_are_refused_saying_why(
    issuer: Issuer, rsa_key: SigningKey, claims: dict[str, Any], reason: str
) -> None:
    """Expired, for another audience or issuer, with no or an unknown role, without exp, or not valid yet:
    refused, and the reason says which."""
    assert reason in await refused(verifier_of(issuer), issuer.token(rsa_key, **claims))


async def test_a_rotated_key_is_fetched_once_and_made_up_kids_cost_one_fetch(
    issuer: Issuer, rsa_key: SigningKey
) -> None:
    """The issuer rotates: a token with the new `kid` triggers one refetch and is accepted; a burst of unknown
    `kid`s right after triggers none (rate limited), and one more only once the interval has passed."""
    clock = Clock()
    verifier = verifier_of(issuer, clock, refetch_min_interval_s=30.0)
    await verifier.principal(issuer.token(rsa_key))
    assert issuer.jwks_fetches == 1
    rotated = SigningKey.rsa()
    issuer.published = [rotated]
    clock.now += 31
    assert (await verifier.principal(issuer.token(rotated))).subject == "oidc-officer-olga"
    assert issuer.jwks_fetches == 2, "one refetch for the unknown kid"
    for attempt in range(20):
        assert "kid" in await refused(verifier, issuer.token(rotated, kid=f"made-up-{attempt}"))
    assert issuer.jwks_fetches == 2, "unknown kids within the interval fetch nothing"
    assert "kid" in await refused(verifier, issuer.token(rsa_key)), "the old key is gone from the set"
    clock.now += 31
    assert "kid" in await refused(verifier, issuer.token(rotated, kid="made-up-after"))
    assert issuer.jwks_fetches == 3, "one more fetch once the interval passed"


async def test_algorithm_confusion_is_refused(issuer: Issuer, rsa_key: SigningKey) -> None:
    """`alg: none`, HS256 keyed with the issuer's public key (the classic confusion), and an RS256 header on an
    EC key's id are all refused before any claim is believed."""
    verifier = verifier_of(issuer)
    claims = jwt.decode(issuer.token(rsa_key), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": rsa_key.kid}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "algorithm not accepted" in await refused(verifier, f"{header}.{payload}.")
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in (hs_header, claims)
    ]
    signature = hmac.new(public_pem, ".".join(segments).encode(), hashlib.sha256).digest()
    forged = ".".join([*segments, base64.urlsafe_b64encode(signature).rstrip(b"=").decode()])
    assert "algorithm not accepted" in await refused(verifier, forged)
    ec_key = issuer.published[1]
    mismatched = issuer.token(rsa_key, kid=ec_key.kid)  # RS256 signed, naming the EC key
    assert "does not match" in await refused(verifier, mismatched)
    assert "well-formed" in await refused(verifier, "a.b.c")


async def test_the_api_takes_oidc_tokens_beside_static_ones(
    issuer: Issuer, rsa_key: SigningKey, dev_client: ExchangeClient, pg_pool: asyncpg.Pool
) -> None:
    """Over HTTP: an OIDC officer lists exchanges as a static officer does; an expired or foreign token gets 401
    with the reason and `invalid_token`; the static table still works."""
    partnership = "p-oidc"
    identities = Identities(StaticTokens.fixed(token_table(partnership)), verifier_of(issuer))
    app = create_app(dev_client, pg_pool, identities)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        oidc = await api.get("/exchanges", headers=auth(issuer.token(rsa_key)))
        assert oidc.status_code == 200, oidc.text
        assert (await api.get("/exchanges", headers=auth(OFFICER))).status_code == 200
        expired = await api.get("/exchanges", headers=auth(issuer.token(rsa_key, exp=1_000_000_000, iat=999_999_000)))
        assert expired.status_code == 401
        assert expired.json()["detail"] == "the token has expired"
        assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        foreign = await api.get("/exchanges", headers=auth(issuer.token(rsa_key, aud="other")))
        assert foreign.status_code == 401
        assert issuer.token(rsa_key, aud="other") not in foreign.text, "a token is never echoed"


async def test_keys_held_stay_in_use_while_the_issuer_is_down(rsa_key: SigningKey) -> None:
    """Once the issuer stops answering, tokens signed by a key already held are still accepted (even past the
    keys' age, each retry bounded), and a token naming a new key is refused until the issuer answers again."""
    clock = Clock()
    with running_issuer(rsa_key) as issuer:
        verifier = verifier_of(issuer, clock, keys_max_age_s=60.0, fetch_timeout_s=2.0)
        token = issuer.token(rsa_key)
        assert (await verifier.principal(token)).role == "officer"
    clock.now += 61
    assert (await verifier.principal(token)).role == "officer", "the issuer is down: the held key still verifies"
    assert verifier.keys.fetches == 2, "one attempt to refresh, which failed"
    assert "kid" in await refused(verifier, issuer.token(SigningKey.rsa()))
