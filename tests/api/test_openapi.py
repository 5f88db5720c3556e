"""The OpenAPI document as a client generator reads it: named operations, one Problem, examples that the API accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from clients.api.app import ROUTERS
from clients.api.body import body_models
from clients.api.problems import Problem
from clients.client import parse
from schemas.messages import SIGNALS, UPDATES
from tests.api.helpers import OPS, auth

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
CAMEL_CASE = re.compile(r"^[a-z][a-zA-Z0-9]*$")
# The doors the issue asked for, by the names a generated client will show.
EXPECTED_OPERATIONS = {
    "startExchange",
    "getExchange",
    "listExchanges",
    "submitReview",
    "signCommitment",
    "confirmMatch",
    "submitReport",
    "validateReport",
    "confirmPayment",
    "uploadEvidence",
    "listEvidence",
    "explainExchange",
    "getLedgerHistory",
    "getReviewInbox",
    "listReviewers",
    "addReviewer",
    "setReviewerUnavailability",
    "listBudgets",
    "listPartnerships",
    "registerPartnership",
    "topUpBudget",
    "listPolicyVersions",
    "dryRunPolicy",
    "exportPersonalData",
    "erasePerson",
    "getHealth",
    "getReadiness",
}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_every_operation_is_named_and_every_error_is_the_shared_problem(api: httpx.AsyncClient) -> None:
    """Operation ids are unique camelCase; every 4xx/5xx answers the one Problem component, never a copy."""
    document = (await api.get("/openapi.json")).json()
    ids = [operation.get("operationId", "") for _, operation in operations(document)]
    assert all(CAMEL_CASE.match(i) for i in ids), [i for i in ids if not CAMEL_CASE.match(i)]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    assert set(ids) >= EXPECTED_OPERATIONS, EXPECTED_OPERATIONS - set(ids)
    assert {i for i in ids if i in {"funds_held", "fundsHeld"}} == set(), "funds_held has no route (ADR 0009)"
    for where, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            assert set(response["content"]) == {"application/problem+json"}, f"{where} {status}"
            assert response["content"]["application/problem+json"]["schema"] == PROBLEM_REF, f"{where} {status}"
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "no FastAPI default errors"
    assert "ValidationError" not in schemas, "no FastAPI default errors"
    problem_shaped = [n for n, s in schemas.items() if {"title", "status", "detail"} <= set(s.get("properties", {}))]
    assert problem_shaped == ["Problem"], "one Problem component"
    dangling = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in schemas}
    assert dangling == set()


async def test_every_body_and_every_answer_has_an_example(api: httpx.AsyncClient) -> None:
    """Each request body (JSON or multipart) and each response of each operation carries an example."""
    document = (await api.get("/openapi.json")).json()
    for where, operation in operations(document):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            assert "example" in content, f"{where}: {media_type} body without an example"
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                assert "example" in content, f"{where} {status} {media_type}: no example"
    bodies = {where for where, operation in operations(document) if "requestBody" in operation}
    assert "POST /exchanges/{application_id}/updates/submit_review" in bodies
    assert "POST /exchanges/{application_id}/evidence" in bodies


async def test_bodies_are_documented_by_their_contract_model(api: httpx.AsyncClient) -> None:
    """A message's body is a $ref to the contract model's component (one per update and signal), not `object`."""
    document = (await api.get("/openapi.json")).json()
    for name, model in {**UPDATES, **SIGNALS}.items():
        if name == "funds_held":
            continue
        kind = "updates" if name in UPDATES else "signals"
        operation = document["paths"][f"/exchanges/{{application_id}}/{kind}/{name}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert document["components"]["schemas"][model.__name__]["additionalProperties"] is False


def test_every_request_example_is_accepted_by_the_strict_parser() -> None:
    """Examples are what the API accepts: each JSON body example parses strictly into its model."""
    checked = 0
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for body in body_models(route.dependant.dependencies):
                parse(body.model, body.example)
                checked += 1
    assert checked >= len(UPDATES) + 2 + 5, "every update, the start, the signals and the resource bodies"


async def test_every_success_example_matches_its_response_model(api: httpx.AsyncClient) -> None:
    """The documented answer of each operation validates against the model the route answers with."""
    document = (await api.get("/openapi.json")).json()
    by_id = {operation["operationId"]: operation for _, operation in operations(document)}
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            assert route.operation_id
            if route.response_model is None:
                continue
            response = by_id[route.operation_id]["responses"][str(route.status_code or 200)]
            TypeAdapter(route.response_model).validate_python(response["content"]["application/json"]["example"])


# The whole document's properties (issue 16, item 4): what schemathesis and client generators rely on.

JSON_SCHEMA_STRING_LIMITS = {"maxLength", "enum", "const", "format"}
COUNTRY_SCHEMA = {"type": "string", "pattern": "^[A-Z]{2}$", "minLength": 2, "maxLength": 2}


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local JSON pointer names, or None (a `$ref` to anywhere but this document is dangling too)."""
    if not ref.startswith("#/"):
        return None
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def strings(node: Any, document: dict[str, Any], where: str, seen: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string schema reachable from `node` (following $refs once each), with where it is."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref not in seen:
                seen.add(ref)
                yield from strings(resolve(document, ref), document, ref, seen)
            return
        if node.get("type") == "string":
            yield where, node
        for key, value in node.items():
            if key not in {"example", "examples", "description", "title", "default"}:
                yield from strings(value, document, f"{where}/{key}", seen)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, document, f"{where}/{index}", seen)


def named(node: Any, name: str, document: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every schema of a property called `name` reachable from `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            yield from named(resolve(document, ref), name, document, seen)
        for key, value in node.get("properties", {}).items():
            if key == name:
                yield value
        for key, value in node.items():
            if key not in {"example", "examples"}:
                yield from named(value, name, document, seen)
    elif isinstance(node, list):
        for value in node:
            yield from named(value, name, document, seen)


async def test_the_whole_document_resolves_documents_its_errors_and_bounds_every_string(
    api: httpx.AsyncClient,
) -> None:
    """Over every operation: each $ref resolves; 405 everywhere, 422 wherever there is input, 413 with a body,
    415 with a JSON body, each the shared Problem (401/403/404/409/429 where returned: the fuzz checks each
    answer's status is documented); every string a caller sends is bounded (maxLength, enum or format) and
    every country code is exactly two capitals."""
    document = (await api.get("/openapi.json")).json()
    dangling = sorted({ref for ref in refs(document) if resolve(document, ref) is None})
    assert dangling == [], f"dangling $refs: {dangling}"
    for where, operation in operations(document):
        responses = operation["responses"]
        body = operation.get("requestBody", {}).get("content", {})
        expected = {"405"}
        expected |= {"422"} if body or operation.get("parameters") else set()
        expected |= {"413"} if body else set()
        expected |= {"415"} if "application/json" in body else set()
        missing = expected - set(responses)
        assert not missing, f"{where}: undocumented {sorted(missing)}"
        for status in expected:
            assert responses[status]["content"]["application/problem+json"]["schema"] == PROBLEM_REF, where
        assert "Allow" in responses["405"]["headers"], f"{where}: a 405 names the methods in Allow"
        sent = [operation.get("parameters", []), operation.get("requestBody", {})]
        loose = [(w, s) for w, s in strings(sent, document, where, set()) if not JSON_SCHEMA_STRING_LIMITS & set(s)]
        assert loose == [], f"{where}: strings without a bound: {loose}"
    countries = list(named(document, "country", document, set()))
    assert len(countries) >= 3, "the organisations' and the reviewers' countries"
    for country in countries:
        assert {k: v for k, v in country.items() if k in COUNTRY_SCHEMA} == COUNTRY_SCHEMA, country


async def test_a_method_a_path_does_not_take_is_405_with_allow_as_documented(api: httpx.AsyncClient) -> None:
    """Each path answers a method none of its operations takes with the documented 405 Problem and `Allow`."""
    document = (await api.get("/openapi.json")).json()
    checked = 0
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x-1", path)
        for method in sorted({"get", "post", "put", "delete", "patch"} - set(item)):
            answer = await api.request(method.upper(), concrete, headers=auth(OPS))
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert answer.headers["content-type"] == "application/problem+json", (method, path)
            assert Problem.model_validate(answer.json()).status == 405
            assert set(answer.headers["allow"].lower().replace(" ", "").split(",")) >= set(item), (method, path)
            checked += 1
    assert checked >= len(document["paths"]) * 3, "most paths take one or two methods: the rest answer 405"


async def test_every_operation_documents_429_with_retry_after(api: httpx.AsyncClient) -> None:
    """The rate limits (issue 16, item 3) can answer any operation with 429 before its token is looked at: each
    operation documents it as the shared Problem with its `Retry-After` header, and the example is a Problem."""
    document = (await api.get("/openapi.json")).json()
    operations = [op for item in document["paths"].values() for op in item.values() if "operationId" in op]
    assert operations
    for operation in operations:
        answer = operation["responses"]["429"]
        assert answer["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "Retry-After" in answer["headers"], operation["operationId"]
        assert Problem.model_validate(answer["content"]["application/problem+json"]["example"]).status == 429
