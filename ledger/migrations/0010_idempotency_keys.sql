-- Idempotency-Key for the REST API (issue 11, item 5; clients/api/idempotency.py).
--
-- A key is the caller's: unique per principal. It is bound to the request it first came with (the route,
-- the id in the path, a SHA-256 of the body): the same key with another request is refused (422), the
-- same request again is answered with the first answer, stored here once it is final (2xx, 4xx). A row
-- without an answer is a request still in flight (a second one gets 409); a 5xx or a timeout deletes the
-- row so that the same request may be retried. Rows are kept for a day, then the key may be used again.

CREATE TABLE idempotency_keys (
    principal        text NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- "POST /exchanges/{application_id}/updates/cancel": the operation, as its path template.
    route            text NOT NULL,
    -- The id in the path (the application id; the partnership of a top-up), '' when the path has none.
    resource_id      text NOT NULL,
    body_sha256      text NOT NULL CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
    status_code      integer CHECK (status_code BETWEEN 200 AND 499),
    response_body    jsonb,
    response_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (principal, key),
    -- An answer is stored whole or not at all.
    CHECK ((completed_at IS NULL) = (status_code IS NULL) AND (status_code IS NULL) = (response_body IS NULL))
);
-- Expired keys are pruned oldest first.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
