"""REPORTING: evidence of closing reports: the store, its limits, verify_evidence and `cx evidence`."""
