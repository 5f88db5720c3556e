"""The contract: pydantic models for every workflow, activity, ledger record and policy table."""
