"""Workflows: deterministic orchestration of each exchange (and, later, of funds and reconciliation)."""
