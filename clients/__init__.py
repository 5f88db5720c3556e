"""The doors into the engine: the typed Python client, the `cx` CLI and (later) the REST API."""
