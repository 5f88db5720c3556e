-- Rate limits of the REST API shared by every API process (issue 16, item 3; ledger/rate_counts.py, ADR 0023).
--
-- One row per bucket and fixed window: `write:<subject>` counts a principal's writes, `auth-failure:<address>`
-- the wrong tokens a client address presented. Windows are aligned on the database's clock, so every process
-- counts into the same row; rows whose window has ended are pruned.

CREATE TABLE api_rate_counts (
    bucket        text NOT NULL CHECK (length(bucket) BETWEEN 1 AND 400),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    count         integer NOT NULL CHECK (count >= 1),
    PRIMARY KEY (bucket, window_start),
    CHECK (window_end > window_start)
);
CREATE INDEX api_rate_counts_window_end_idx ON api_rate_counts (window_end);
