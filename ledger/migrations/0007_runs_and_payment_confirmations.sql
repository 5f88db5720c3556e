-- Trust at the edges (issue 10).
--
-- One run per exchange id, forever. The contract asks every starter for REJECT_DUPLICATE, but an SDK's
-- default id-reuse policy lets a closed exchange's id start again. The first thing a run does (after its
-- input and id are checked) is to claim its application id here; a later run under the same id finds
-- the first run's claim and ends at once, touching nothing (no hold, no R7 claim, no read-model row).
CREATE TABLE exchange_runs (
    application_id  text PRIMARY KEY,
    workflow_id     text NOT NULL,
    run_id          text NOT NULL UNIQUE,
    started_at      timestamptz NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);

-- Finance's answer: who confirmed the order. The reference and the time are written together, in the
-- same transaction as the audit row and the read model's PAID (activities/projection.py).
ALTER TABLE payment_orders ADD COLUMN confirmed_by text;
ALTER TABLE payment_orders ADD CONSTRAINT payment_orders_confirmation_complete
    CHECK ((payment_reference IS NULL) = (confirmed_at IS NULL)
           AND (payment_reference IS NULL) = (confirmed_by IS NULL));
CREATE INDEX payment_orders_unconfirmed_idx ON payment_orders (created_at) WHERE confirmed_at IS NULL;
