-- REPORTING (issue 6, point 5): the evidence files attached to closing reports.
--
-- The bytes live in a content-addressed directory (activities/evidence.py `EvidenceStore`,
-- `<root>/<sha256[:2]>/<sha256>`); this table records each upload so that the Exchange workflow can
-- check, before it accepts `submit_report`, that every item it is given was really uploaded for that
-- application with that size and kind (activity `verify_evidence`).
--
-- The SHA-256 is the key: the same bytes uploaded again return the existing row (idempotent upload),
-- and one document can be evidence of one application only (a boarding pass reused for a second
-- exchange is refused by the upload, not silently shared).

CREATE TABLE evidence_files (
    sha256          text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- No foreign key to `exchanges`: that read model is written asynchronously by the workflow and
    -- may lag behind an upload; `verify_evidence` matches on application_id instead.
    application_id  text NOT NULL,
    -- The uploader's label only: it never becomes part of a path on disk.
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    -- The contract is schemas/exchange.py `EvidenceItem.kind`.
    kind            text NOT NULL
        CHECK (kind IN ('boarding_pass', 'travel_invoice', 'accommodation_invoice', 'other')),
    -- Detected from the content, never from the name. Which types are allowed is a code-level limit
    -- (`EvidenceLimits`), so only the shape is checked here and a new type needs no migration.
    media_type      text NOT NULL CHECK (media_type ~ '^[a-z]+/[a-z0-9.+-]+$'),
    size_bytes      bigint NOT NULL CHECK (size_bytes > 0),
    stored_at       timestamptz NOT NULL DEFAULT now(),
    uploaded_by     text NOT NULL CHECK (length(uploaded_by) BETWEEN 1 AND 128)
);
-- Both hot reads are per application: `cx evidence list` (ordered by upload) and `verify_evidence`.
CREATE INDEX evidence_files_application_idx ON evidence_files (application_id, stored_at);
