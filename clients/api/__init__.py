"""The REST API (docs/adr/0009-rest-api.md): `create_app` builds it; `cx api` and `make run` serve it (workers/)."""

from clients.api.app import Principal, TokenConfigError, create_app, load_tokens, parse_tokens

__all__ = ["Principal", "TokenConfigError", "create_app", "load_tokens", "parse_tokens"]
