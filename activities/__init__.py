"""Activities: the units of work with side effects (database, ledger) or heavy computation."""
