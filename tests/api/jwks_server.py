"""A local OIDC issuer for the tests: a discovery document and a JWKS over HTTP on a free port, keys that can
rotate, and tokens signed by the test (issue 16, item 3). Nothing leaves the machine."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from workers.devstack import free_port

AUDIENCE = "clusterxchange-api"


@dataclass
class SigningKey:
    kid: str
    algorithm: str  # RS256 or ES256
    private: Any

    @classmethod
    def rsa(cls) -> SigningKey:
        return cls(
            f"rsa-{uuid.uuid4().hex[:8]}", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @classmethod
    def ec(cls) -> SigningKey:
        return cls(f"ec-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        public: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@dataclass
class Issuer:
    """The issuer's state: its URL, the keys its JWKS publishes, and how often the JWKS was fetched."""

    url: str
    published: list[SigningKey] = field(default_factory=list)
    jwks_fetches: int = 0

    def token(self, key: SigningKey, kid: str | None = None, **claims: Any) -> str:
        """A token signed by `key`, with sensible claims that `claims` override (None removes one)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "oidc-officer-olga",
            "iat": now,
            "exp": now + 300,
            "cx_role": "officer",
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, key.private, algorithm=key.algorithm, headers={"kid": kid or key.kid})


@contextmanager
def running_issuer(*keys: SigningKey) -> Iterator[Issuer]:
    """An issuer publishing `keys` on 127.0.0.1:<free port> until the block ends."""
    port = free_port()
    issuer = Issuer(f"http://127.0.0.1:{port}", list(keys))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                document: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                document = {"keys": [key.jwk() for key in issuer.published]}
            else:
                self.send_error(404)
                return
            data = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args  # quiet: the test output stays readable

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
