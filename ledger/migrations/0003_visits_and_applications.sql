-- R7: an organisation may visit only once in the whole scheme. An exchange claims its visitor's visit
-- when it reaches FUNDING; the partial unique index lets exactly one live claim exist per organisation,
-- so two applications racing to FUNDING cannot both win (enforced here, not by a read before a write).
-- A claim is released (never deleted) when the exchange ends without the visit taking place.
CREATE TABLE organisation_visits (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id  text NOT NULL,
    application_id   text NOT NULL UNIQUE,
    claimed_at       timestamptz NOT NULL DEFAULT now(),
    released_at      timestamptz,
    release_reason   text,
    CHECK ((released_at IS NULL) = (release_reason IS NULL))
);
CREATE UNIQUE INDEX organisation_visits_one_live_claim_uidx
    ON organisation_visits (organisation_id) WHERE released_at IS NULL;

-- The application as submitted, so dry runs of a candidate policy (`cx policy simulate`) and
-- explanations can re-evaluate open exchanges without asking every workflow.
ALTER TABLE exchanges ADD COLUMN application jsonb;
