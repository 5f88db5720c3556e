"""The REST API (docs/adr/0009-rest-api.md): `create_app` builds it, `serve` runs it for `cx api`."""

from clients.api.app import Principal, TokenConfigError, create_app, load_tokens, serve

__all__ = ["Principal", "TokenConfigError", "create_app", "load_tokens", "serve"]
