"""Business counters, added through the Temporal SDK's meter so they share the SDK's Prometheus endpoint.

- `cx_events_total{event, stage, partnership}`: every projected event (stage entries, decisions, alerts);
- `cx_held_cents_total{partnership}`, `cx_paid_cents_total{partnership}`: euro cents newly held and paid
  (a replayed ledger write is not counted twice).
With metrics off (no Prometheus endpoint configured) the meter is a no-op.
"""

from __future__ import annotations

from temporalio import activity


def count(name: str, value: int, description: str, **attributes: str) -> None:
    """Add to a business counter from inside an activity."""
    if value <= 0:
        return
    activity.metric_meter().create_counter(name, description).add(value, attributes)
