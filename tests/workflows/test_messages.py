"""schemas.messages names exactly the messages the Exchange workflow handles, checked through the Temporal
client as another service would meet them (no private SDK API): every registered update has a handler that
decodes strictly, a name outside the registry has none, and `confirm_payment` is heard."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from clients.client import ExchangeClient
from schemas.errors import Refusal
from schemas.ids import exchange_workflow_id
from schemas.messages import SIGNALS, UPDATES
from schemas.stages import Stage
from tests.factories import application
from tests.waiting import eventually
from tests.workflows.conftest import send_update, wait_for_stage


async def test_every_registered_update_is_handled_and_nothing_else(dev_client: ExchangeClient) -> None:
    """An empty payload to each registered update is refused as InvalidInput by its handler's strict decoding;
    an update the registry does not name is refused as unknown by the workflow."""
    app = application()
    await dev_client.start_exchange(app)
    await wait_for_stage(dev_client, app.application_id, Stage.REVIEW)
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    for name in sorted(UPDATES):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await send_update(handle, name, {})
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError), (name, cause)
        assert cause.type == Refusal.INVALID_INPUT, (name, cause)
    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await send_update(handle, "approve_everything", {})
    assert "approve_everything" in str(unknown.value.cause)


async def test_the_registered_signals_are_the_workflows(dev_client: ExchangeClient, pg_pool: asyncpg.Pool) -> None:
    """The registry's signals are confirm_payment (heard: an early one is recorded as ignored) and funds_held
    (sent only by the partnership's Funds workflow)."""
    assert set(SIGNALS) == {"confirm_payment", "funds_held"}
    app = application()
    await dev_client.start_exchange(app)
    await wait_for_stage(dev_client, app.application_id, Stage.REVIEW)
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    await handle.signal("confirm_payment", {})
    query = "SELECT count(*) FROM audit_events WHERE application_id = $1 AND event = 'payment_confirmation_ignored'"
    await eventually(
        lambda: pg_pool.fetchval(query, app.application_id),
        bool,
        "confirm_payment to be heard: a payment_confirmation_ignored row",
        within_s=5,
    )
