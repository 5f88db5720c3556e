"""The Exchange workflow, one module per lifecycle stage (workflow.py is the entry; docs/architecture.md)."""

from workflows.exchange.workflow import ExchangeWorkflow

__all__ = ["ExchangeWorkflow"]
