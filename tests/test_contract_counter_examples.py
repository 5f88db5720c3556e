"""The exported JSON Schemas say exactly what the engine accepts (issue 10): examples pass both, and every
counter-example derived from a schema is refused by both, the schema validator and the engine's decoder.

"The engine" here is the worker's own decoder (schemas.converter: strict JSON, refusal typed InvalidInput),
the code that decodes every start input, update and signal whatever the sender's SDK; tests/workflows/
test_edges.py and test_temporal_cli.py send a sample of the same refusals through real workers.

Counter-examples are generated from each schema, for every property at every depth: a value of each wrong
JSON type, an enum value that does not exist, a string breaking its pattern or length, a number outside its
bounds, a missing required property, and an unknown property. Rules between fields that a JSON Schema
cannot state (dates in order, two different organisations) are listed in the model's description and
checked at the end.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from schemas.converter import StrictPydanticJSONConverter
from schemas.errors import Refusal
from schemas.export import CONTRACT, JSON_DIR

INPUTS = {stem: model for stem, model in CONTRACT.items() if stem.split(".")[0] in {"start", "update", "signal"}}
WRONG_TYPE_VALUES: dict[str, list[Any]] = {
    "string": [5, True, None, ["x"], {"x": 1}],
    "integer": ["5", 5.5, True, None, [5]],
    "number": ["5.5", True, None, {"n": 1}],
    "boolean": ["true", 1, 0, None, "yes"],
    "array": ["x", {"x": 1}, 5, None],
    "object": ["x", [1], 5, None],
}
DECODER = StrictPydanticJSONConverter()
Path = tuple[str | int, ...]


def engine_accepts(model: type[BaseModel], document: Any) -> bool:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(document).encode())
    try:
        DECODER.from_payload(payload, model)
    except ApplicationError as error:
        refused = error
    else:
        return True
    assert refused.type == Refusal.INVALID_INPUT, refused  # a refusal is the typed, final InvalidInput
    assert refused.non_retryable, refused
    return False


def schema_of(stem: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((JSON_DIR / f"{stem}.json").read_text())
    return loaded


def resolve(root: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Follow $ref into $defs, and an optional value's anyOf [X, null] to X; say whether null is allowed."""
    nullable = False
    while True:
        if "$ref" in node:
            node = root["$defs"][node["$ref"].split("/")[-1]]
        elif "anyOf" in node:
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            nullable = nullable or len(branches) < len(node["anyOf"])
            if len(branches) != 1:
                return node, nullable
            node = branches[0]
        else:
            return node, nullable


def set_at(document: Any, path: Path, value: Any) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def delete_at(document: Any, path: Path) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return changed


def counter_examples(root: dict[str, Any], node: dict[str, Any], example: Any, path: Path = ()) -> Iterator[Any]:
    """Documents that differ from `example` in one place, each breaking `node` (the schema at `path`)."""
    node, nullable = resolve(root, node)
    kind = node.get("type")
    if path:
        for wrong in WRONG_TYPE_VALUES.get(kind, []) if isinstance(kind, str) else []:
            if not (wrong is None and nullable):
                yield set_at(example, path, wrong)
        if "enum" in node:
            yield set_at(example, path, "no-such-" + "value")
        if kind == "string":
            if "pattern" in node:
                for breaking in pattern_breakers(node["pattern"]):
                    yield set_at(example, path, breaking)
            if node.get("minLength", 0) > 0:
                yield set_at(example, path, "")
            if "maxLength" in node:
                yield set_at(example, path, "x" * (node["maxLength"] + 1))
            if node.get("format") in {"date", "date-time"}:
                yield set_at(example, path, "2027-02-30" if node["format"] == "date" else "2027-03-01T09:00:00")
        if kind in {"integer", "number"}:
            for bound, delta in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1), ("exclusiveMaximum", 0)):
                if bound in node:
                    yield set_at(example, path, node[bound] + delta)
        if kind == "array" and "minItems" in node:
            yield set_at(example, path, [])
    if kind == "object":
        properties: dict[str, Any] = node.get("properties", {})
        value = _get(example, path)
        for name in node.get("required", []):
            yield delete_at(example, (*path, name))
        if node.get("additionalProperties") is False:
            yield set_at(example, (*path, "surprise_field"), 1)
        for name, child in properties.items():
            if name in value:
                yield from counter_examples(root, child, example, (*path, name))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                yield from counter_examples(root, extra, example, (*path, name))
    if kind == "array" and "items" in node:
        for index in range(len(_get(example, path))):
            yield from counter_examples(root, node["items"], example, (*path, index))


PATTERN_CANDIDATES = ("!! not this !!", " ", "bad\u0000value", "esc\u001bape", "line\nbreak", "c1\u0085char")


def pattern_breakers(pattern: str) -> list[str]:
    """Strings that break this pattern (as a JSON Schema validator reads it): control characters, blanks, ..."""
    alone = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    breaking = [candidate for candidate in PATTERN_CANDIDATES if not alone.is_valid(candidate)]
    assert breaking, f"no candidate breaks {pattern!r}; add one"
    return breaking


def _get(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


@pytest.mark.parametrize("stem", sorted(INPUTS))
def test_every_example_is_accepted_by_the_schema_and_the_engine(stem: str) -> None:
    """Each message's examples (exported with its schema) are valid JSON Schema instances and decode."""
    schema = schema_of(stem)
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    assert schema.get("examples"), f"{stem}: give the model an example (schemas.exchange.examples)"
    for example in schema["examples"]:
        assert validator.is_valid(example), (stem, list(validator.iter_errors(example)))
        assert engine_accepts(INPUTS[stem], example), (stem, example)


@pytest.mark.parametrize("stem", sorted(INPUTS))
def test_every_counter_example_is_refused_by_the_schema_and_by_the_engine(stem: str) -> None:
    """What the schema refuses the engine refuses, with InvalidInput; and the schema refuses each of them."""
    schema = schema_of(stem)
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    disagreements = []
    count = 0
    for example in schema["examples"]:
        for counter in counter_examples(schema, schema, example):
            count += 1
            in_schema, in_engine = validator.is_valid(counter), engine_accepts(INPUTS[stem], counter)
            if in_schema or in_engine:
                disagreements.append((in_schema, in_engine, json.dumps(counter)[:300]))
    assert count >= 5, f"{stem}: only {count} counter-examples; the generator lost its way"
    assert not disagreements, f"{stem}: accepted (schema, engine): {disagreements}"


CROSS_FIELD: list[tuple[str, dict[str, Any], str]] = [
    ("start.ApplicationInput", {"start_date": "2027-03-05", "end_date": "2027-03-01"}, "end_date"),
    ("update.amend_dates", {"start_date": "2027-03-12", "end_date": "2027-03-08"}, "end_date"),
    ("update.validate_report", {"decision": "return"}, "reasons"),
]


@pytest.mark.parametrize(("stem", "change", "named"), CROSS_FIELD, ids=[c[0] for c in CROSS_FIELD])
def test_rules_between_fields_are_refused_naming_the_field(stem: str, change: dict[str, Any], named: str) -> None:
    """Rules between fields: the engine refuses them naming the field; the model's description states them."""
    model = INPUTS[stem]
    document = {**schema_of(stem)["examples"][0], **change}
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(document).encode())
    with pytest.raises(ApplicationError, match=named) as refused:
        DECODER.from_payload(payload, model)
    assert refused.value.type == Refusal.INVALID_INPUT
    assert named in (model.__doc__ or "") or named in json.dumps(schema_of(stem))


def test_the_same_organisation_cannot_visit_itself() -> None:
    """host.organisation_id must differ from visitor.organisation_id: refused, naming host.organisation_id."""
    document = schema_of("start.ApplicationInput")["examples"][0]
    document = set_at(document, ("host", "organisation_id"), document["visitor"]["organisation_id"])
    assert not engine_accepts(INPUTS["start.ApplicationInput"], document)
