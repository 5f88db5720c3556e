"""The security matrix (issue 11, item 9): docs/security.md is the code's table, and every cell holds over HTTP.

One exchange is set up with a principal in each relation to it (its submitter, a person of its host and of
its visitor organisation, its partnership's officer and CRM, an assigned, a recused and an unrelated
reviewer, unrelated services and applicants, ops) and then cancelled, so that whatever is allowed changes
nothing. Every (principal, operation) pair is sent over HTTP; the expected answer is computed from the
cell of the table (clients/api/access.py) and the relation written down here by hand, so the test checks
that the app derives each relation from the read model and the assignments as the table says:
- refused: 403 from the API's authorisation (a problem with no `refusal`), or 404 "Exchange not found" for this
  exchange, which exists (a caller who may not read it learns nothing of it: issue 16), or 401 without a token;
- allowed: anything but those (the operation may still refuse for its own reasons: 409 for the ended
  exchange, 404 for an unknown resource, 422 for a file that is not a document), never a 5xx.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from clients.api import Principal, create_app
from clients.api.access import ACTIONS, Actor, Grant, Reach, grant_for
from clients.api.examples import MESSAGE_EXAMPLES
from clients.api.openapi import camel
from clients.api.routers.codec import CODEC_OPERATION
from clients.api.security_matrix import render
from clients.client import ExchangeClient
from ledger.evidence_store import FileEvidenceStore
from schemas.exchange import Party
from schemas.messages import UPDATES
from tests.api.helpers import (
    APPLICANT,
    APPLICANT_SUBJECT,
    OFFICER,
    auth,
    body,
    officer_of,
    open_reviewers,
    reviewer_token,
    stage_is,
    token_table,
)
from tests.workflows.conftest import REVIEWERS, add_review_panel, panel_member

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
NO_TOKEN = "no token"


@dataclass(frozen=True)
class Relation:
    """How a principal stands to the exchange, written down by hand (what the app must find out itself)."""

    submitter: bool = False
    assigned: bool = False
    holds: frozenset[Party] = frozenset()


@dataclass(frozen=True)
class Who:
    name: str
    relation: Relation = field(default_factory=Relation)


# The principals, by name; each one's Principal is made in the fixture, once the exchange's ids are known.
WHO = [
    Who("officer of the VOP", Relation(holds=frozenset({Party.VISITOR_PARTNERSHIP}))),
    Who("programme service"),
    Who("CRM of the VOP", Relation(holds=frozenset({Party.VISITOR_PARTNERSHIP}))),
    Who("CRM of the HO", Relation(holds=frozenset({Party.HOST_ORGANISATION}))),
    Who("CRM elsewhere"),
    Who("reviewer assigned", Relation(assigned=True)),
    Who("reviewer recused"),
    Who("reviewer elsewhere"),
    Who("applicant who submitted", Relation(submitter=True)),
    Who("person of the HO", Relation(holds=frozenset({Party.HOST_ORGANISATION}))),
    Who("person of the VO", Relation(holds=frozenset({Party.VISITOR_ORGANISATION}))),
    Who("applicant elsewhere"),
    Who("ops"),
    Who(NO_TOKEN),
]


@dataclass(frozen=True)
class Case:
    """One operation as the matrix tries it; `variant` is the party or side of a party's act."""

    operation_id: str
    variant: str = ""

    @property
    def label(self) -> str:
        return f"{self.operation_id}[{self.variant}]" if self.variant else self.operation_id


PARTY_VARIANTS = {
    "signCommitment": [p.value for p in Party],
    "confirmMatch": ["host", "visitor"],
}
CASES = [Case(operation_id, variant) for operation_id in ACTIONS for variant in PARTY_VARIANTS.get(operation_id, [""])]


@dataclass
class World:
    api: httpx.AsyncClient
    partnership: str
    data: dict[str, Any]
    principals: dict[str, Principal]
    tokens: dict[str, str]
    standing_reviewer: str

    @property
    def app_id(self) -> str:
        return str(self.data["application_id"])


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(dev_client: ExchangeClient, pg_pool: asyncpg.Pool, evidence_dir: Path) -> AsyncIterator[World]:
    """The exchange, taken to REVIEW with one reviewer recused and a replacement assigned, then cancelled."""
    partnership = f"p-matrix-{uuid.uuid4().hex[:8]}"
    await add_review_panel(pg_pool, partnership)
    setup_tokens = token_table(partnership)
    app = create_app(dev_client, pg_pool, setup_tokens, evidence_store=FileEvidenceStore(evidence_dir))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as setup:
        registered = await setup.put(f"/partnerships/{partnership}", json={"name": partnership}, headers=auth(OFFICER))
        assert registered.status_code in (200, 201), registered.text
        data = body(partnership, host_partnership_id=f"{partnership}-host", submitted_by=APPLICANT_SUBJECT)
        assert (await setup.post("/exchanges", json=data, headers=auth(APPLICANT))).status_code == 201
        app_id = data["application_id"]
        recused = (await open_reviewers(setup, OFFICER, app_id))[0]
        names = {panel_member(partnership, n): n for n in REVIEWERS}
        declared = await setup.post(
            f"/exchanges/{app_id}/updates/declare_conflict",
            json={"actor_id": recused, "reason": "I advised the host"},
            headers=auth(reviewer_token(names[recused])),
        )
        assert declared.status_code == 200, declared.text
        standing = (await open_reviewers(setup, OFFICER, app_id))[0]
        assert standing != recused
        cancelled = await setup.post(
            f"/exchanges/{app_id}/updates/cancel",
            json={"actor_id": officer_of(partnership), "reason": "the matrix needs an ended exchange"},
            headers=auth(OFFICER),
        )
        assert cancelled.status_code == 200, cancelled.text
        await stage_is(setup, OFFICER, app_id, "CANCELLED")

    host_org, visitor_org = data["host"]["organisation_id"], data["visitor"]["organisation_id"]
    p = frozenset({partnership})
    principals = {
        "officer of the VOP": Principal(subject=officer_of(partnership), role="officer", partnerships=p),
        "programme service": Principal(subject="finance", role="service"),
        "CRM of the VOP": Principal(subject=f"crm-{partnership}", role="service", partnerships=p),
        "CRM of the HO": Principal(subject="crm-host", role="service", organisations=frozenset({host_org})),
        "CRM elsewhere": Principal(subject="crm-elsewhere", role="service", partnerships=frozenset({"p-elsewhere"})),
        "reviewer assigned": Principal(subject=standing, role="reviewer"),
        "reviewer recused": Principal(subject=recused, role="reviewer"),
        "reviewer elsewhere": Principal(subject="rev-elsewhere", role="reviewer"),
        "applicant who submitted": Principal(subject=APPLICANT_SUBJECT, role="applicant"),
        "person of the HO": Principal(subject="ho-hanna", role="applicant", organisations=frozenset({host_org})),
        "person of the VO": Principal(subject="vo-vera", role="applicant", organisations=frozenset({visitor_org})),
        "applicant elsewhere": Principal(subject="applicant-piet", role="applicant"),
        "ops": Principal(subject="ops-olga", role="ops"),
    }
    tokens = {name: f"tok-matrix-{index:02d}-{uuid.uuid4().hex[:8]}" for index, name in enumerate(principals)}
    app = create_app(
        dev_client,
        pg_pool,
        {tokens[name]: principal for name, principal in principals.items()},
        evidence_store=FileEvidenceStore(evidence_dir),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        yield World(api, partnership, data, principals, tokens, standing)


def acted_for(case: Case) -> Party | None:
    if case.operation_id == "signCommitment":
        return Party(case.variant)
    if case.operation_id == "confirmMatch":
        return Party.HOST_ORGANISATION if case.variant == "host" else Party.VISITOR_ORGANISATION
    if case.operation_id == "validateReport":
        return Party.VISITOR_PARTNERSHIP
    return None


def expected_allowed(cell: Grant | None, relation: Relation, case: Case) -> bool:
    """The table's cell read against the relation written down above."""
    if cell is None:
        return False
    if not cell.reach or Reach.ANY in cell.reach:
        return True
    party = acted_for(case)
    return (
        (Reach.SUBMITTER in cell.reach and relation.submitter)
        or (Reach.ASSIGNED in cell.reach and relation.assigned)
        or (Reach.PARTY in cell.reach and bool(relation.holds & cell.parties))
        or (Reach.ACTED_FOR in cell.reach and party is not None and party in relation.holds)
    )


def request(world: World, case: Case, who: Principal | None) -> tuple[str, str, dict[str, Any]]:
    """(method, path, httpx keyword arguments) for the case, sent by `who`: a valid body naming them as the
    actor where their cell says "as themselves" (and someone of theirs where it says "free")."""
    action = ACTIONS[case.operation_id]
    cell = grant_for(action, who) if who else None
    actor = f"someone-of-{who.subject}" if who and cell and cell.actor is Actor.FREE else (who.subject if who else "x")
    app_id, partnership = world.app_id, world.partnership
    exchange = f"/exchanges/{app_id}"
    reviewer = who.subject if who and who.role == "reviewer" else world.standing_reviewer
    updates = {camel(name): name for name in UPDATES}
    op = case.operation_id
    if op in updates:
        name = updates[op]
        payload: dict[str, Any] = {**MESSAGE_EXAMPLES[name], "actor_id": actor}
        payload.pop("on_behalf_of", None)  # the API fills it in for whoever holds the party
        if name == "sign_commitment":
            payload["party"] = case.variant
        elif name == "confirm_match":
            payload["side"] = case.variant
        elif name == "amend_application":
            payload["application"] = world.data
        return "POST", f"{exchange}/updates/{name}", {"json": payload}
    documents = {"files": {"file": ("not-a-document.pdf", b"not a document", "application/pdf")}}
    import_file = json.dumps([{**world.data, "submitted_by": actor}]).encode()
    requests: dict[str, tuple[str, str, dict[str, Any]]] = {
        "startExchange": ("POST", "/exchanges", {"json": {**world.data, "submitted_by": actor}}),
        "getExchange": ("GET", exchange, {}),
        "getApplication": ("GET", f"{exchange}/application", {}),
        "listExchanges": ("GET", "/exchanges", {"params": {"partnership": partnership, "limit": 100}}),
        "explainExchange": ("GET", f"{exchange}/explanation", {}),
        "getLedgerHistory": ("GET", f"{exchange}/ledger", {}),
        "confirmPayment": (
            "POST",
            f"{exchange}/signals/confirm_payment",
            {
                "json": {
                    **MESSAGE_EXAMPLES["confirm_payment"],
                    "payment_order_id": f"po-{app_id}",
                    "confirmed_by": actor,
                }
            },
        ),
        "uploadEvidence": (
            "POST",
            f"{exchange}/evidence",
            {**documents, "data": {"kind": "other", "uploaded_by": actor}},
        ),
        "listEvidence": ("GET", f"{exchange}/evidence", {}),
        "listReviewers": ("GET", "/reviewers", {"params": {"partnership": partnership}}),
        "addReviewer": (
            "POST",
            "/reviewers",
            {
                "json": {
                    "reviewer_id": f"matrix-dummy-{partnership}",
                    "name": "Matrix Dummy",
                    "organisation_id": "org-matrix-dummy",
                    "country": "BE",
                    "partnership_id": "p-matrix-nowhere",
                    "roles": ["reviewer"],
                }
            },
        ),
        "setReviewerUnavailability": ("PUT", f"/reviewers/{reviewer}/unavailability", {"json": {"until": None}}),
        "getReviewInbox": ("GET", f"/reviewers/{reviewer}/inbox", {}),
        "listBudgets": ("GET", "/budgets", {}),
        "listPartnerships": ("GET", "/partnerships", {}),
        "registerPartnership": ("PUT", f"/partnerships/{partnership}", {"json": {"name": partnership}}),
        "topUpBudget": (
            "POST",
            "/partnerships/p-matrix-unknown/top-ups",
            {"json": {"amount_cents": 1, "reference": "R"}},
        ),
        "listPolicyVersions": ("GET", "/policies", {}),
        "countExchanges": ("GET", "/exchange-counts", {}),
        "getWaitlist": ("GET", f"/partnerships/{partnership}/waitlist", {}),
        "listStuckExchanges": ("GET", "/stuck-exchanges", {}),
        "getExchangeTimeline": ("GET", f"{exchange}/timeline", {}),
        "listPaymentOrders": ("GET", "/payment-orders", {"params": {"partnership": partnership}}),
        # The exchange's own application again: already started (or refused for its submitter), starts nothing.
        "importApplications": ("POST", "/imports", {"files": {"file": ("one.json", import_file, "application/json")}}),
        "dryRunPolicy": ("POST", "/policies/dry-run", {"json": {"toml": "not a policy"}}),
        # Temporal's codec protocol (clients/api/routers/codec.py): an empty batch decodes to an empty batch.
        "usePayloadCodec": ("POST", "/codec/decode", {"json": {"payloads": []}}),
        # Reads only: the person may be on record or not (an empty export is still 200).
        "exportPersonalData": ("GET", f"/privacy/people/{reviewer}/export", {}),
        # Nobody on record: an officer's erasure answers "already erased, or never known" and changes nothing.
        "erasePerson": ("POST", f"/privacy/people/nobody-{uuid.uuid4().hex[:8]}/erasure", {"json": {"reason": "t"}}),
        # Issue 17: reads only, the KPIs of one day and the payment orders as of now.
        "getKpiReport": ("GET", "/reports/kpis", {"params": {"from": "2026-01-01", "to": "2026-01-01"}}),
        "exportTable": ("GET", "/exports/payment-orders", {"params": {"format": "csv"}}),
    }
    return requests[op]


def test_docs_security_md_is_the_codes_table() -> None:
    """docs/security.md is exactly what `python -m clients.api.security_matrix` prints from the table."""
    assert SECURITY_MD.read_text() == render(), (
        "docs/security.md is stale: run `.venv/bin/python -m clients.api.security_matrix > docs/security.md`"
    )


async def test_every_operation_has_a_row_and_a_case(world: World) -> None:
    """Every operation of the OpenAPI document (but the probes) has a row in the table and is tried below."""
    document = (await world.api.get("/openapi.json")).json()
    operations = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    # The codec server is Temporal's protocol, served but not documented in OpenAPI (its row is still tried).
    assert operations - {"getHealth", "getReadiness"} == set(ACTIONS) - {CODEC_OPERATION}
    assert {case.operation_id for case in CASES} == set(ACTIONS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
@pytest.mark.parametrize("who", WHO, ids=lambda w: w.name)
async def test_every_cell_holds_over_http(world: World, who: Who, case: Case) -> None:
    """The request is refused by authorisation exactly when the table's cell says so for this relation."""
    principal = world.principals.get(who.name)
    method, path, kwargs = request(world, case, principal)
    headers = auth(world.tokens[who.name]) if principal else {}
    answer = await world.api.request(method, path, headers=headers, **kwargs)
    assert answer.status_code < 500, answer.text
    if principal is None:
        assert answer.status_code == 401, answer.text
        return
    action = ACTIONS[case.operation_id]
    cell = grant_for(action, principal)
    problem = answer.json() if answer.headers.get("content-type") == "application/problem+json" else {}
    hidden = answer.status_code == 404 and problem.get("title") == "Exchange not found"
    refused_by_authorisation = (answer.status_code == 403 and "refusal" not in problem) or hidden
    # A list is never refused for where the caller stands: it is filtered (checked below).
    listing = case.operation_id == "listExchanges"
    allowed = cell is not None if listing else expected_allowed(cell, who.relation, case)
    assert refused_by_authorisation is not allowed, (
        f"{who.name} -> {case.label}: the table says {'allowed' if allowed else 'refused'}, "
        f"the API answered {answer.status_code} {answer.text}"
    )
    if listing and allowed:
        listed = {row["application_id"] for row in answer.json()["items"]}
        reads = expected_allowed(grant_for(ACTIONS["getExchange"], principal), who.relation, case)
        assert (world.app_id in listed) is reads, f"{who.name}: the list shows exactly what it may read"
