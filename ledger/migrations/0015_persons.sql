-- Persons and their data keys: erasure by crypto-shredding (issue 16, item 2; ledger/persons.py, ledger/erasure.py,
-- docs/adr/0025-erasure-by-crypto-shredding.md).
--
-- `persons` names nobody: an opaque ref and, once erased, when, by whom and why. `person_identifiers` links an
-- actor id to its ref by an HMAC of the id (the key is the programme's, never in the database), and loses the
-- person's rows at erasure. `person_keys` holds one data key per person, wrapped under a key-encryption key that
-- is not in the database either; erasure sets `wrapped_key` to NULL, which makes every value sealed under it
-- (`cx1:<ref>:...`) unreadable in every table and every later backup.

CREATE TABLE persons (
    person_ref      text PRIMARY KEY CHECK (person_ref ~ '^psn_[0-9a-f]{32}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    erased_at       timestamptz,
    erased_by       text,
    erasure_reason  text,
    CHECK ((erased_at IS NULL) = (erased_by IS NULL))
);

CREATE TABLE person_identifiers (
    identifier_hmac bytea PRIMARY KEY CHECK (length(identifier_hmac) = 32),
    person_ref      text NOT NULL REFERENCES persons (person_ref)
);
CREATE INDEX person_identifiers_ref_idx ON person_identifiers (person_ref);

CREATE TABLE person_keys (
    person_ref    text PRIMARY KEY REFERENCES persons (person_ref),
    key_id        text NOT NULL,
    wrapped_key   bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    destroyed_at  timestamptz,
    -- A destroyed key is gone for good: a NULL key with no destruction time is the keyless mode's row.
    CHECK (destroyed_at IS NULL OR wrapped_key IS NULL)
);

-- A destroyed key never comes back: an UPDATE may only destroy (or rewrap a live key), never restore.
CREATE FUNCTION person_keys_no_restore() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.destroyed_at IS NOT NULL THEN
        RAISE EXCEPTION 'person_keys: the key of % was destroyed at %; it cannot be restored', OLD.person_ref,
            OLD.destroyed_at USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER person_keys_no_restore BEFORE UPDATE ON person_keys
    FOR EACH ROW EXECUTE FUNCTION person_keys_no_restore();

-- A sealed name is longer than the name (nonce, tag, base64, the ref): the edge still limits names to 200.
ALTER TABLE reviewers DROP CONSTRAINT reviewers_name_check;
ALTER TABLE reviewers ADD CONSTRAINT reviewers_name_check CHECK (length(name) BETWEEN 1 AND 1000);

-- Erasure replaces a reviewer's id by the person's ref: the assignments follow.
ALTER TABLE review_assignments DROP CONSTRAINT review_assignments_reviewer_id_fkey;
ALTER TABLE review_assignments ADD CONSTRAINT review_assignments_reviewer_id_fkey
    FOREIGN KEY (reviewer_id) REFERENCES reviewers (reviewer_id) ON UPDATE CASCADE;

-- The audit trail stays append-only, with one exception: the erasure (ledger/erasure.py) replaces a person's
-- identifier by their ref and their unsealed text by 'erased', inside a transaction that has set
-- `cx.erasure` to the person's ref. Nothing else may change, and never a row's event, stage, times, policy
-- version or application: the trigger compares them.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('cx.erasure', true) ~ '^psn_[0-9a-f]{32}$'
       AND NEW.id = OLD.id AND NEW.application_id = OLD.application_id AND NEW.sequence = OLD.sequence
       AND NEW.event = OLD.event AND NEW.stage = OLD.stage AND NEW.at = OLD.at
       AND NEW.recorded_at = OLD.recorded_at AND NEW.policy_version IS NOT DISTINCT FROM OLD.policy_version THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
