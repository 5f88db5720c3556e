"""The Postgres ledger: migrations, the two-phase transfer store and its invariant checks."""
