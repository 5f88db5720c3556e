"""A null payload is refused like any other bad input where the message needs an object (issue 16, item 4).

Every SDK encodes None/nil/null as `binary/null`, which the SDK's converter hands to any handler whatever it
declares: an update's validator got None and failed with an untyped AttributeError (found by the Temporal fuzz,
tests/workflows/test_fuzz_updates.py). The strict converter refuses it with the typed InvalidInput.
"""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from schemas.converter import DATA_CONVERTER
from schemas.errors import Refusal
from schemas.messages import SIGNALS, UPDATES

NULL = Payload(metadata={"encoding": b"binary/null"})


@pytest.mark.parametrize("name", sorted({**UPDATES, **SIGNALS}))
def test_a_null_message_is_refused_typed_and_final(name: str) -> None:
    """Every update's and signal's model refuses null with a non-retryable InvalidInput naming the model."""
    model = {**UPDATES, **SIGNALS}[name]
    with pytest.raises(ApplicationError) as refused:
        DATA_CONVERTER.payload_converter.from_payloads([NULL], [model])
    assert (refused.value.type, refused.value.non_retryable) == (Refusal.INVALID_INPUT.value, True)
    assert model.__name__ in refused.value.message


def test_null_stays_none_where_the_type_takes_it() -> None:
    """An optional value, a `-> None` result and an untyped value still decode null as None."""
    converter = DATA_CONVERTER.payload_converter
    assert converter.from_payloads([NULL, NULL, NULL], [int | None, type(None), None]) == [None, None, None]  # type: ignore[list-item]
    assert converter.from_payloads([NULL]) == [None]
