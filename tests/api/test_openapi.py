"""The OpenAPI document as a client generator reads it: named operations, one Problem, examples that the API accepts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from clients.api.body import body_models
from clients.api.routers import budgets, evidence, exchanges, ops, oversight, policy, privacy, reviews
from clients.client import parse
from schemas.messages import SIGNALS, UPDATES

ROUTERS = (
    ops.router,
    exchanges.router,
    evidence.router,
    reviews.router,
    budgets.router,
    policy.router,
    oversight.router,
    privacy.router,
)
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
