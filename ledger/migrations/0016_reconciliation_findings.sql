-- Nightly reconciliation (issue 17, item 4; docs/adr/0026-reconciliation-schedule.md): every difference the
-- Reconcile workflow finds between the workflows, the read model, the ledger and the payment orders, one
-- row per finding and run. Not audit_events: those rows are per exchange, numbered by the workflow's own
-- sequence (a row written here would take a number the workflow writes next, and its insert would be
-- dropped by ON CONFLICT), and a ledger-wide breach belongs to no exchange.
CREATE TABLE reconciliation_findings (
    id              bigserial PRIMARY KEY,
    run_id          text NOT NULL CHECK (length(run_id) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind ~ '^[a-z_]{1,64}$'),
    application_id  text,
    expected        text NOT NULL,
    found           text NOT NULL,
    -- sha256 of kind, application id, expected and found: a retried page writes each finding once.
    finding_key     text NOT NULL CHECK (length(finding_key) = 64),
    found_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, finding_key)
);
CREATE INDEX reconciliation_findings_application_idx ON reconciliation_findings (application_id)
    WHERE application_id IS NOT NULL;

-- Append-only, like audit_events: a finding is evidence, corrected by the next run, never edited.
CREATE FUNCTION reconciliation_findings_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_findings is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER reconciliation_findings_no_update BEFORE UPDATE OR DELETE ON reconciliation_findings
    FOR EACH ROW EXECUTE FUNCTION reconciliation_findings_append_only();
CREATE TRIGGER reconciliation_findings_no_truncate BEFORE TRUNCATE ON reconciliation_findings
    FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_findings_append_only();
