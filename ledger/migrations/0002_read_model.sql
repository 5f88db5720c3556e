-- Read model and audit trail written by the Exchange workflow's projection activity, plus the
-- payment orders that the payment activity records in the same transaction as the ledger posting.

CREATE TABLE partnerships (
    partnership_id text PRIMARY KEY,
    name           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per exchange: what lists, inboxes and ops dashboards read (never fan-out queries).
CREATE TABLE exchanges (
    application_id       text PRIMARY KEY,
    partnership_id       text NOT NULL,
    host_partnership_id  text NOT NULL,
    visitor_org_id       text NOT NULL,
    host_org_id          text NOT NULL,
    host_country         text NOT NULL,
    start_date           date NOT NULL,
    end_date             date NOT NULL,
    stage                text NOT NULL,
    grant_cents          bigint CHECK (grant_cents IS NULL OR grant_cents >= 0),
    held_cents           bigint NOT NULL DEFAULT 0 CHECK (held_cents >= 0),
    paid_cents           bigint NOT NULL DEFAULT 0 CHECK (paid_cents >= 0),
    next_deadline        timestamptz,
    policy_version       text,
    submitted_by         text NOT NULL,
    last_sequence        integer NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX exchanges_stage_idx ON exchanges (stage);
CREATE INDEX exchanges_partnership_idx ON exchanges (partnership_id, stage);
CREATE INDEX exchanges_deadline_idx ON exchanges (next_deadline) WHERE next_deadline IS NOT NULL;

-- Append-only: who did what, when, why, under which policy version.
CREATE TABLE audit_events (
    id              bigserial PRIMARY KEY,
    application_id  text NOT NULL,
    sequence        integer NOT NULL,
    event           text NOT NULL,
    stage           text NOT NULL,
    actor_id        text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    policy_version  text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    at              timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (application_id, sequence)
);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Written in the same transaction as the ledger posting, so an order exists iff the money moved.
CREATE TABLE payment_orders (
    payment_order_id   text PRIMARY KEY,
    application_id     text NOT NULL UNIQUE,
    partnership_id     text NOT NULL,
    amount_cents       bigint NOT NULL CHECK (amount_cents > 0),
    hold_id            bigint NOT NULL,
    post_transfer_id   bigint NOT NULL,
    payout_transfer_id bigint NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    confirmed_at       timestamptz,
    payment_reference  text
);
