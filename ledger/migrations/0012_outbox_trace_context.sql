-- Trace context through the outbox (issue 15, item 6; docs/adr/0019-dispatcher-on-maintained-parts.md).
--
-- The W3C `traceparent` of the span that enqueued the message (the activity posting a payment, say), so the
-- dispatcher's delivery span is its child and the webhook carries the same trace to the receiver. NULL when
-- no tracer was configured at enqueue time, and for every row written before this migration.

ALTER TABLE outbox
    ADD COLUMN trace_context text
        -- version-traceid-spanid-flags, 55 characters for version 00; a little room for future versions.
        CHECK (trace_context IS NULL OR length(trace_context) BETWEEN 55 AND 128);
