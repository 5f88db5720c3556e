"""Custom search attributes: what ops filter exchanges by in the Temporal UI and `temporal workflow list`.

Example: `temporal workflow list --query "CxStage='REVIEW' AND CxNextDeadline < '2026-12-01T00:00:00Z'"`.
Registered on the dev server at start-up and on a cluster by `cx temporal setup`.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

CX_STAGE = SearchAttributeKey.for_keyword("CxStage")
CX_PARTNERSHIP = SearchAttributeKey.for_keyword("CxPartnership")
CX_HOST_COUNTRY = SearchAttributeKey.for_keyword("CxHostCountry")
CX_GRANT_CENTS = SearchAttributeKey.for_int("CxGrantCents")
CX_NEXT_DEADLINE = SearchAttributeKey.for_datetime("CxNextDeadline")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    CX_STAGE,
    CX_PARTNERSHIP,
    CX_HOST_COUNTRY,
    CX_GRANT_CENTS,
    CX_NEXT_DEADLINE,
)


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add our search attributes to the namespace (dev server, test server or cluster); return the names
    added. Idempotent: attributes already registered are left alone (asked first where the server can
    list them; the time-skipping test server cannot, and accepts a repeated add)."""
    wanted = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        wanted = {name: kind for name, kind in wanted.items() if name not in existing.custom_attributes}
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
    if wanted:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=wanted)
        )
    return sorted(wanted)
