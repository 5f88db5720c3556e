-- Sessions of the web app (issue 14; clients/web/session.py).
--
-- The browser holds only a random session id in an HttpOnly cookie; this table holds its SHA-256 (a stolen
-- copy of the table opens no session), the principal's token fingerprint (SHA-256 of the bearer token:
-- the token itself never leaves the process's configuration), the CSRF token every form carries, and a
-- one-shot message for the next page. Rows expire; sign-out deletes the row.

CREATE TABLE web_sessions (
    id_sha256          text PRIMARY KEY CHECK (id_sha256 ~ '^[0-9a-f]{64}$'),
    token_fingerprint  text NOT NULL CHECK (token_fingerprint ~ '^[0-9a-f]{64}$'),
    subject            text NOT NULL,
    csrf_token         text NOT NULL CHECK (length(csrf_token) >= 32),
    flash              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);
