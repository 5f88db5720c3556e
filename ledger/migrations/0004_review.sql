-- REVIEW (issue 5): the people who review and the applications assigned to them.
--
-- `reviewers` is reference data managed by `cx reviewers ...` (and later the API); the contract is
-- schemas/review.py `Reviewer`. `review_assignments` is written by the review activities
-- (activities/review.py) on behalf of the Exchange workflow, which remains the source of truth for
-- decisions: these rows exist so that inboxes and load balancing are one indexed query, never a
-- fan-out over workflows.

CREATE TABLE reviewers (
    reviewer_id        text PRIMARY KEY,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    organisation_id    text NOT NULL,
    country            text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    partnership_id     text NOT NULL,
    -- A person without a role could never be picked nor escalated to: refuse it rather than keep it.
    roles              text[] NOT NULL
        CHECK (cardinality(roles) > 0 AND roles <@ ARRAY['reviewer', 'programme_officer']::text[]),
    -- Organisations this person declared a conflict of interest with.
    conflicts          text[] NOT NULL DEFAULT '{}',
    -- Not assigned before this day (holidays); NULL means available.
    unavailable_until  date,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- Assignment reads the reviewers and officers of one partnership.
CREATE INDEX reviewers_partnership_idx ON reviewers (partnership_id);

-- One row per (application, reviewer): a reviewer is assigned to an application at most once at a time;
-- a later round (after an amendment, or an officer's manual reassign) reopens the same row.
CREATE TABLE review_assignments (
    application_id  text NOT NULL,
    -- A foreign key: an assignment to somebody unknown is a bug or a typo, never a state to keep.
    reviewer_id     text NOT NULL REFERENCES reviewers (reviewer_id),
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    due_at          timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'submitted', 'recused', 'reassigned', 'closed')),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, reviewer_id)
);
-- Only open assignments are ever listed or counted, and they are few next to the closed history, so
-- one partial index serves both hot queries: a reviewer's inbox (reviewer_id = $1 ORDER BY due_at) and
-- the open load per reviewer (GROUP BY reviewer_id, an index-only scan).
CREATE INDEX review_assignments_open_by_reviewer_idx
    ON review_assignments (reviewer_id, due_at) WHERE status = 'open';
