"""Trace context through the outbox (migration 0012): `enqueue` stores the current span's W3C traceparent, the
dispatcher's delivery span is its child, and the webhook carries that trace to the receiver. An in-memory
OpenTelemetry provider of the test's own (the process's global provider is never set here)."""

from __future__ import annotations

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.outbox.receivers import WebhookReceiver, dispatcher_config, enqueue_webhook
from workers.dispatcher import Dispatcher


async def test_a_delivered_webhook_carries_the_trace_of_the_span_that_enqueued_it(
    pool: asyncpg.Pool, receiver: WebhookReceiver
) -> None:
    """The row keeps the enqueuing span's traceparent; the webhook's traceparent is the delivery span, a child of it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("post_payment") as enqueuing:
        outbox_id = await enqueue_webhook(pool, receiver.url, "app-traced")
    enqueuing_context = enqueuing.get_span_context()
    trace_id, span_id = f"{enqueuing_context.trace_id:032x}", f"{enqueuing_context.span_id:016x}"
    flags = f"{int(enqueuing_context.trace_flags):02x}"  # sampled, and the SDK's random-trace-id flag
    stored = await pool.fetchval("SELECT trace_context FROM outbox WHERE id = $1", outbox_id)
    assert stored == f"00-{trace_id}-{span_id}-{flags}"

    dispatcher = Dispatcher(pool, dispatcher_config(), tracer=provider.get_tracer("workers.dispatcher"))
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()

    [(headers, _)] = receiver.received
    [delivery] = [span for span in exporter.get_finished_spans() if span.name.startswith("outbox deliver")]
    assert delivery.parent is not None
    assert (delivery.parent.trace_id, delivery.parent.span_id) == (
        enqueuing_context.trace_id,
        enqueuing_context.span_id,
    )
    assert delivery.context is not None
    assert headers["traceparent"] == f"00-{trace_id}-{delivery.context.span_id:016x}-{flags}"
    assert delivery.attributes is not None
    assert delivery.attributes["cx.outbox.id"] == outbox_id


async def test_without_a_tracer_nothing_is_stored_or_sent(pool: asyncpg.Pool, receiver: WebhookReceiver) -> None:
    """No tracer configured (the default): the row's trace_context is NULL and the webhook has no traceparent."""
    outbox_id = await enqueue_webhook(pool, receiver.url, "app-untraced")
    assert await pool.fetchval("SELECT trace_context FROM outbox WHERE id = $1", outbox_id) is None
    dispatcher = Dispatcher(pool, dispatcher_config())
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    [(headers, _)] = receiver.received
    assert "traceparent" not in headers
