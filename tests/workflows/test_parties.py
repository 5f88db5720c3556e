"""Who may do what, as the workflow enforces it through any Temporal client (issue 11).

The REST API binds each act to its authenticated principal (tests/api); these tests speak to the workflow
directly, as a service with Temporal access would, and show what the workflow itself refuses: a signature,
a match confirmation or a report validation for a party the actor does not act for; one person signing for
two parties; an amendment changing who submitted; an officer overriding over their own earlier act.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from clients.client import ExchangeClient
from schemas.errors import Refusal
from schemas.exchange import Party
from schemas.ids import exchange_workflow_id
from schemas.stages import Stage
from tests.factories import application
from tests.workflows.conftest import OFFICER, Fund, approve, assigned, panel_member, send_update, wait_for_stage


async def refusal_of(handle: WorkflowHandle[Any, Any], update: str, payload: dict[str, Any]) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await send_update(handle, update, payload)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.non_retryable, cause
    return cause


async def test_each_party_signs_only_for_itself_and_by_its_own_person(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """Every (party, on_behalf_of) pair but the party's own is refused: NotAllowed for another party's id or a
    stranger's, InvalidInput when missing; the right one is accepted; one person cannot sign twice."""
    partnership = await funded_partnership(500_000)
    host_partnership = f"p-host-{uuid.uuid4().hex[:8]}"  # four distinct parties
    app = application(visitor_partnership_id=partnership, host_partnership_id=host_partnership)
    await dev_client.start_exchange(app)
    await wait_for_stage(dev_client, app.application_id, Stage.REVIEW)
    await approve(dev_client, app.application_id)
    status = await wait_for_stage(dev_client, app.application_id, Stage.AGREEMENT)
    parties = status.parties
    assert len(set(parties.values())) == 4, parties
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))

    tried = 0
    for party in Party:
        for claimed in [*(parties[p] for p in Party if p is not party), "org-stranger"]:
            refusal = await refusal_of(
                handle, "sign_commitment", {"actor_id": "someone", "party": party.value, "on_behalf_of": claimed}
            )
            assert refusal.type == Refusal.NOT_ALLOWED, refusal.message
            assert "on_behalf_of" in refusal.message, refusal.message
            tried += 1
        missing = await refusal_of(handle, "sign_commitment", {"actor_id": "someone", "party": party.value})
        assert missing.type == Refusal.INVALID_INPUT
        assert "on_behalf_of" in missing.message
    assert tried == 16

    first = {"actor_id": "ho-hanna", "party": "HO", "on_behalf_of": parties[Party.HOST_ORGANISATION]}
    await send_update(handle, "sign_commitment", first)
    twice = await refusal_of(
        handle, "sign_commitment", {**first, "party": "HOP", "on_behalf_of": parties[Party.HOST_PARTNERSHIP]}
    )
    assert twice.type == Refusal.NOT_ALLOWED
    assert "already signed for HO" in twice.message

    for side, wrong in (("host", Party.VISITOR_ORGANISATION), ("visitor", Party.HOST_ORGANISATION)):
        match = {"actor_id": f"{side}-contact", "side": side, "on_behalf_of": parties[wrong]}
        refusal = await refusal_of(handle, "confirm_match", match)
        assert refusal.type == Refusal.NOT_ALLOWED
    assert (await dev_client.status(app.application_id)).signatures == {Party.HOST_ORGANISATION: "ho-hanna"}


async def test_an_amendment_keeps_who_submitted_and_the_officers_fields(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """Answering a request for changes, the applicant cannot change submitted_by, submitted_at or the policy."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    status = await assigned(dev_client, app.application_id)
    assert status.review is not None
    reviewer = status.review.assignments[0].reviewer_id
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    await send_update(handle, "request_changes", {"actor_id": reviewer, "changes": "Please add a day-by-day agenda."})
    original = app.model_dump(mode="json", exclude_none=True)
    for change in ({"submitted_by": "someone-else"}, {"policy_version": "2022.1"}):
        refusal = await refusal_of(
            handle, "amend_application", {"actor_id": "applicant-ola", "application": {**original, **change}}
        )
        field = next(iter(change))
        assert refusal.type == Refusal.NOT_ALLOWED, refusal.message
        assert f"application.{field}" in refusal.message, refusal.message
    amended = {**original, "goals": "Day 1: induction; days 2-5: joint trials."}
    await send_update(handle, "amend_application", {"actor_id": "applicant-ola", "application": amended})


async def test_an_officer_cannot_override_over_their_own_request_for_changes(
    dev_client: ExchangeClient, funded_partnership: Fund
) -> None:
    """Four-eyes: the officer who sent the application back cannot then decide it by override."""
    partnership = await funded_partnership(500_000)
    app = application(visitor_partnership_id=partnership)
    await dev_client.start_exchange(app)
    await assigned(dev_client, app.application_id)
    officer = panel_member(partnership, OFFICER)
    handle = dev_client.temporal.get_workflow_handle(exchange_workflow_id(app.application_id))
    await send_update(handle, "request_changes", {"actor_id": officer, "changes": "Please add the host's letter."})
    refusal = await refusal_of(
        handle, "override", {"actor_id": officer, "decision": "approve", "justification": "the letter is fine"}
    )
    assert refusal.type == Refusal.NOT_ALLOWED
    assert "requested changes" in refusal.message
