"""The REST API over HTTP against the real stack (Temporal dev server, Postgres)."""
