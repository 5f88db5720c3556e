"""The one data converter every client and worker uses: pydantic v2 models on the wire as JSON, decoded strictly.

Other services send us JSON from any SDK, the `temporal` CLI or plain HTTP. What they send is decoded
here, where it enters the workflow (start input, update, signal) or an activity, in pydantic's strict
JSON mode: no string-to-number or number-to-bool coercion, no float where an integer is due, no unknown
fields (the models forbid extras). What fails is refused at once with a non-retryable ApplicationError of
type `InvalidInput` whose message names every field and rule. So a bad start closes its workflow with
that failure instead of failing workflow tasks in a loop, and a bad update is rejected with it, whatever
the caller's SDK (docs/contract.md, "Refusals").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.common.v1
from pydantic import TypeAdapter, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    BinaryNullPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from schemas.codec import EncryptionCodec, PayloadKeys
from schemas.errors import Refusal, refused

MAX_FIELD_ERRORS = 10  # a message names this many fields at most; the rest are counted


def describe_errors(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field, rule) for each problem pydantic found: `visitor.latitude`, `Input should be a valid number`."""
    described = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "input"
        described.append((f"{prefix}{location}", str(item["msg"])))
    return described


def refusal_message(errors: list[tuple[str, str]], what: str) -> str:
    shown = "; ".join(f"{field}: {rule}" for field, rule in errors[:MAX_FIELD_ERRORS])
    more = len(errors) - MAX_FIELD_ERRORS
    return f"invalid {what}: {shown}" + (f" (and {more} more)" if more > 0 else "")


class StrictPydanticJSONConverter(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON converter, but validating in strict mode and refusing with a typed, named error."""

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        hint: Any = type_hint if type_hint is not None else Any
        try:
            adapter: TypeAdapter[Any] = self._type_adapter(hint)
        except TypeError:  # an unhashable hint: build the adapter without the cache
            adapter = TypeAdapter(hint)
        try:
            return adapter.validate_json(payload.data, strict=True)
        except ValidationError as error:
            name = getattr(hint, "__name__", str(hint))
            raise refused(Refusal.INVALID_INPUT, refusal_message(describe_errors(error), name)) from None


class StrictNullConverter(BinaryNullPayloadConverter):
    """A null (`binary/null`, what every SDK sends for None/nil/null) only where the type takes None.

    The SDK's own converter hands None to any handler, whatever it declares: an update with a null
    payload reached its validator as None and failed with an untyped AttributeError, and a null signal
    would fail its workflow task (found by the Temporal fuzz, issue 16). Refused like any other bad input.
    """

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        if type_hint is None or type_hint is Any:
            return None
        try:
            TypeAdapter(type_hint).validate_python(None, strict=True)
        except ValidationError as error:
            name = getattr(type_hint, "__name__", str(type_hint))
            raise refused(Refusal.INVALID_INPUT, refusal_message(describe_errors(error), name)) from None
        return None


class StrictPydanticPayloadConverter(CompositePayloadConverter):
    """The default converters, with JSON handled by StrictPydanticJSONConverter and null by StrictNullConverter."""

    def __init__(self) -> None:
        strict_json = StrictPydanticJSONConverter()
        strict_null = StrictNullConverter()
        super().__init__(
            *(
                strict_json
                if isinstance(converter, JSONPlainPayloadConverter)
                else strict_null
                if isinstance(converter, BinaryNullPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# Plaintext: payloads as JSON, readable by anyone who can read the history. Processes use `data_converter`.
DATA_CONVERTER = DataConverter(payload_converter_class=StrictPydanticPayloadConverter)


def data_converter(keys: PayloadKeys | None) -> DataConverter:
    """The engine's converter, encrypting every payload with `keys` (schemas/codec.py); plaintext without keys.

    Built once per process from its Settings (workers/temporal_config.py `load_connection`) and given to every
    client and worker it connects, so no connection of the engine can forget the codec.
    """
    if keys is None:
        return DATA_CONVERTER
    return dataclasses.replace(DATA_CONVERTER, payload_codec=EncryptionCodec(keys))
