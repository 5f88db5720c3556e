-- Privacy export (issue 16, item 2; ledger/privacy.py): a person's rows are found by the actor columns.
--
-- `cx privacy export` and `GET /privacy/people/{person}/export` read every row that names a person. The
-- reviewers, assignments, web sessions and idempotency keys are already indexed by the person's column;
-- these three are not, and the audit trail grows with every event of every exchange: without an index each
-- export would read the whole table. The cost is one more index entry per audit row and per application,
-- small next to the rows themselves. The erasure that follows (docs/adr/0025-erasure-by-crypto-shredding.md)
-- finds the person's rows the same way.

CREATE INDEX audit_events_actor_idx ON audit_events (actor_id);
CREATE INDEX exchanges_submitted_by_idx ON exchanges (submitted_by);
CREATE INDEX evidence_files_uploaded_by_idx ON evidence_files (uploaded_by);
