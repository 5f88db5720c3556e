-- Transactional outbox (ADR 0007): messages written in the same transaction as the business change
-- that causes them (a payment order, a notification), delivered afterwards by workers/dispatcher.py.
-- A row is pending (delivered_at and dead_at NULL), delivered, or dead (parked after max attempts).

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    -- Built from business ids (`payment-order:<application id>`): a retried transaction enqueues once,
    -- and receivers use it (X-CX-Dedup-Key, Message-ID) to drop the duplicates of at-least-once delivery.
    dedup_key       text NOT NULL UNIQUE CHECK (length(dedup_key) BETWEEN 1 AND 200),
    topic           text NOT NULL CHECK (topic IN ('payment_order', 'notification')),
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    destination     text NOT NULL CHECK (length(destination) BETWEEN 1 AND 2000),
    payload         jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Counted when a dispatcher claims the row, so a message that crashes its dispatcher still parks.
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The claim of the dispatcher currently delivering the row; a stale claim cannot reschedule it.
    claim_token     uuid,
    delivered_at    timestamptz,
    dead_at         timestamptz,
    last_error      text,
    CHECK (delivered_at IS NULL OR dead_at IS NULL)
);

-- What dispatchers poll: only pending rows, in due order.
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL AND dead_at IS NULL;
-- What ops look at: the dead letters.
CREATE INDEX outbox_dead_idx ON outbox (dead_at) WHERE dead_at IS NOT NULL;
