"""The programme's rules as pure functions: screening, pricing, reviewer choice, evidence checks, calendars.

No database, no clock, no Temporal: the activities wrap them in units of work, the workflow and the
clients call them directly (a dry run of a candidate policy, an upload checked before it is stored).
Between schemas and ledger in the one-way graph (docs/adr/0014-one-way-imports.md).
"""
