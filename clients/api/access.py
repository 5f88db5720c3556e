"""Who may do what, on which exchange, for which party: one table that the routes enforce and the docs print.

Issue 11. Every operation of the API has a row in `ACTIONS`; each row says, per kind of principal, whether
it may act at all and, when it may, how it must stand to the exchange (`Reach`) and to the body's actor
field (`Actor`). The routes call `grant_for` before they read a body and `reaches` / `actor_refusal` once
the body and the exchange's facts are known (clients/api/context.py); `clients/api/security_matrix.py`
renders the same rows as docs/security.md, and tests/api/test_security_matrix.py tries every cell over
HTTP. Nothing here does I/O, so the table can be read, printed and tested without a server.

The principles, in the words of the issue:
- A party's act (a signature, a match confirmation, a report validation) comes only from a principal of
  that party: its credentials name the party's organisation (HO, VO) or partnership (HOP, VOP).
- A review is cast only by the assigned reviewer, as themself; an officer who must decide instead uses
  `override` as themself (four-eyes against their own acts is the workflow's).
- Officers act as themselves (the actor field is their subject). The one exception is the import of an
  earlier record: an officer's start names the original `submitted_by`.
- Services act for the parties their credentials name. A service naming no party is a programme service
  (finance, an import job): it reads and signals across the programme but acts for no party. A service
  may name its own people in the actor field (a partnership's CRM acting for its staff): the actor is
  theirs to say, the party is not.
- Reviewers and applicants act only as themselves; ops read and never write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from clients.api.auth import INTERNAL_SIGNALS, Principal
from clients.api.openapi import camel
from schemas.exchange import Party
from schemas.messages import SIGNALS, UPDATES


class Kind(StrEnum):
    """The columns of the table: a principal's role, services split by whether they name parties."""

    OFFICER = "officer"
    PROGRAMME_SERVICE = "programme service"
    PARTY_SERVICE = "party service"
    REVIEWER = "reviewer"
    APPLICANT = "applicant"
    OPS = "ops"


KIND_MEANING: Mapping[Kind, str] = {
    Kind.OFFICER: "role `officer`: the programme's back office",
    Kind.PROGRAMME_SERVICE: "role `service` naming no organisation or partnership (finance, an import job)",
    Kind.PARTY_SERVICE: "role `service` naming organisations or partnerships (a partnership's CRM)",
    Kind.REVIEWER: "role `reviewer`: a member of a partnership's review panel",
    Kind.APPLICANT: "role `applicant`: a person of an applying, hosting or partnership organisation",
    Kind.OPS: "role `ops`: operations, read-only",
}


def kind_of(who: Principal) -> Kind:
    if who.role == "service":
        return Kind.PARTY_SERVICE if who.organisations or who.partnerships else Kind.PROGRAMME_SERVICE
    return Kind(who.role)


class Reach(StrEnum):
    """How a principal stands to an exchange; a grant lists the ways that suffice (any one of them)."""

    ANY = "any"  # every exchange
    SUBMITTER = "submitter"  # the exchange's `submitted_by` is the principal's subject
    ASSIGNED = "assigned"  # a reviewer whose assignment stands (not recused, not reassigned)
    PARTY = "party"  # holds the exchange's id of one of the grant's parties
    ACTED_FOR = "acted for"  # holds the id of the party the body acts for (sign_commitment, confirm_match, ...)


class Actor(StrEnum):
    """What the body's actor field (actor_id, submitted_by, uploaded_by, confirmed_by) may say."""

    NONE = "none"  # the action has no actor field
    SELF = "self"  # the principal's subject, nobody else
    FREE = "free"  # anyone: the service's own people, or the original submitter of an imported record


ALL_PARTIES = frozenset(Party)
ORGANISATION_PARTIES = frozenset({Party.HOST_ORGANISATION, Party.VISITOR_ORGANISATION})


def holds(who: Principal, party: Party, party_id: str) -> bool:
    """The principal's credentials name this party's id: organisations for HO/VO, partnerships for HOP/VOP."""
    return party_id in (who.organisations if party in ORGANISATION_PARTIES else who.partnerships)


@dataclass(frozen=True)
class Grant:
    """One cell: the kind may do the action, on exchanges it reaches by one of `reach`.

    `reach` is empty for actions that are not about one exchange (reviewers, budgets, policy);
    `own_record` limits a reviewer to their own record (their inbox, their unavailability);
    `officer_fields` lets a start set `submitted_at`, `policy_version` and the host agency's approval.
    """

    reach: frozenset[Reach] = frozenset()
    parties: frozenset[Party] = frozenset()
    actor: Actor = Actor.NONE
    own_record: bool = False
    officer_fields: bool = False


def grant(*reach: Reach, parties: frozenset[Party] = frozenset(), actor: Actor = Actor.NONE) -> Grant:
    assert (Reach.PARTY in reach) == bool(parties), "PARTY needs its parties, and only it"
    return Grant(reach=frozenset(reach), parties=parties, actor=actor)


ANYWHERE = grant(Reach.ANY)
NOT_AN_EXCHANGE = Grant()  # allowed, and not about one exchange


def _acted_for_signature(body: Any) -> Party:
    return Party(body.party)


def _acted_for_match(body: Any) -> Party:
    return Party.HOST_ORGANISATION if body.side == "host" else Party.VISITOR_ORGANISATION


def _acted_for_report_validation(body: Any) -> Party:
    return Party.VISITOR_PARTNERSHIP


@dataclass(frozen=True)
class PartyAct:
    """An act for one party (R10): which party the body acts for, and the body field that says so."""

    parties: frozenset[Party]
    acted_for: Callable[[Any], Party]
    field: str  # the body field naming the party (refusals name it)
    rule: str  # the rule in words, for the docs


@dataclass(frozen=True)
class Action:
    """One operation of the API and who may call it (`grants`: absent kinds are refused)."""

    operation_id: str
    route: str
    summary: str
    grants: Mapping[Kind, Grant]
    actor_field: str | None = None
    party_act: PartyAct | None = None
    # Per kind, what the docs say beyond the cell (the view an applicant gets, a list's filter...).
    notes: Mapping[Kind, str] = field(default_factory=dict)


# Reads of one exchange: the programme's side reads everything; a reviewer reads what is assigned to them
# while the assignment stands (a declared conflict removes it: need to know); an applicant and a party's
# service read the exchanges they submitted or are a party of, in the party view (no reviewers' names).
EXCHANGE_READ: Mapping[Kind, Grant] = {
    Kind.OFFICER: ANYWHERE,
    Kind.PROGRAMME_SERVICE: ANYWHERE,
    Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=ALL_PARTIES),
    Kind.REVIEWER: grant(Reach.ASSIGNED),
    Kind.APPLICANT: grant(Reach.SUBMITTER, Reach.PARTY, parties=ALL_PARTIES),
    Kind.OPS: ANYWHERE,
}
PARTY_VIEW = "party view: reviewers' names and organisations left out"
READ_NOTES: Mapping[Kind, str] = {Kind.PARTY_SERVICE: PARTY_VIEW, Kind.APPLICANT: PARTY_VIEW}

VISITOR_SIDE = frozenset({Party.VISITOR_ORGANISATION, Party.VISITOR_PARTNERSHIP})
HOST_SIDE = frozenset({Party.HOST_ORGANISATION, Party.HOST_PARTNERSHIP})
SELF, FREE = Actor.SELF, Actor.FREE

REVIEWER_ONLY: Mapping[Kind, Grant] = {Kind.REVIEWER: grant(Reach.ASSIGNED, actor=SELF)}
OFFICER_ONLY: Mapping[Kind, Grant] = {Kind.OFFICER: grant(Reach.ANY, actor=SELF)}


def _party_act_grants() -> Mapping[Kind, Grant]:
    # Whoever holds the party acted for: officers their partnerships (HOP/VOP) and only the organisations
    # their credentials name; services for their people; applicants as themselves.
    return {
        Kind.OFFICER: grant(Reach.ACTED_FOR, actor=SELF),
        Kind.PARTY_SERVICE: grant(Reach.ACTED_FOR, actor=FREE),
        Kind.APPLICANT: grant(Reach.ACTED_FOR, actor=SELF),
    }


# Every update of the contract, by wire name.
UPDATE_GRANTS: Mapping[str, Mapping[Kind, Grant]] = {
    "submit_review": REVIEWER_ONLY,
    "declare_conflict": REVIEWER_ONLY,
    "request_changes": {**REVIEWER_ONLY, **OFFICER_ONLY},
    "amend_application": {
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=VISITOR_SIDE, actor=FREE),
        Kind.APPLICANT: grant(Reach.SUBMITTER, actor=SELF),
    },
    "reassign": OFFICER_ONLY,
    "override": OFFICER_ONLY,
    "extend_review_deadline": OFFICER_ONLY,
    "reopen": OFFICER_ONLY,
    "confirm_match": _party_act_grants(),
    "sign_commitment": _party_act_grants(),
    "amend_dates": {
        **OFFICER_ONLY,
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=ALL_PARTIES, actor=FREE),
        Kind.APPLICANT: grant(Reach.SUBMITTER, Reach.PARTY, parties=ORGANISATION_PARTIES, actor=SELF),
    },
    "confirm_attendance": {
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=HOST_SIDE, actor=FREE),
        Kind.APPLICANT: grant(Reach.PARTY, parties=frozenset({Party.HOST_ORGANISATION}), actor=SELF),
    },
    "report_no_show": {
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=HOST_SIDE, actor=FREE),
        Kind.APPLICANT: grant(Reach.PARTY, parties=frozenset({Party.HOST_ORGANISATION}), actor=SELF),
    },
    "submit_report": {
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=VISITOR_SIDE, actor=FREE),
        Kind.APPLICANT: grant(
            Reach.SUBMITTER, Reach.PARTY, parties=frozenset({Party.VISITOR_ORGANISATION}), actor=SELF
        ),
    },
    "validate_report": _party_act_grants(),
    "withdraw": {
        Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=VISITOR_SIDE, actor=FREE),
        Kind.APPLICANT: grant(
            Reach.SUBMITTER, Reach.PARTY, parties=frozenset({Party.VISITOR_ORGANISATION}), actor=SELF
        ),
    },
    "cancel": OFFICER_ONLY,
}
assert set(UPDATE_GRANTS) == set(UPDATES), "every update of the contract has its row"

PARTY_ACTS: Mapping[str, PartyAct] = {
    "sign_commitment": PartyAct(
        ALL_PARTIES, _acted_for_signature, "party", "the party signed for (`party`): HO, VO, HOP or VOP"
    ),
    "confirm_match": PartyAct(
        ORGANISATION_PARTIES, _acted_for_match, "side", "the side's organisation (`side`: host HO, visitor VO)"
    ),
    "validate_report": PartyAct(
        frozenset({Party.VISITOR_PARTNERSHIP}),
        _acted_for_report_validation,
        "on_behalf_of",
        "the visitor's partnership (VOP)",
    ),
}

SIGNAL_GRANTS: Mapping[str, Mapping[Kind, Grant]] = {
    # Finance (a programme service) or an officer reconciling by hand; never a party's own system.
    "confirm_payment": {
        Kind.OFFICER: grant(Reach.ANY, actor=SELF),
        Kind.PROGRAMME_SERVICE: grant(Reach.ANY, actor=FREE),
    },
}
assert set(SIGNAL_GRANTS) == set(SIGNALS) - INTERNAL_SIGNALS, "every routed signal has its row"
SIGNAL_ACTOR_FIELDS: Mapping[str, str | None] = {"confirm_payment": "confirmed_by"}

BACK_OFFICE: Mapping[Kind, Grant] = {Kind.OFFICER: NOT_AN_EXCHANGE}
PROGRAMME_SIDE: Mapping[Kind, Grant] = {
    Kind.OFFICER: NOT_AN_EXCHANGE,
    Kind.PROGRAMME_SERVICE: NOT_AN_EXCHANGE,
    Kind.OPS: NOT_AN_EXCHANGE,
}


def _exchange_actions() -> list[Action]:
    """Starting, reading and listing exchanges, their explanations and their ledger."""
    return [
        Action(
            "startExchange",
            "POST /exchanges",
            "start an exchange",
            {
                Kind.OFFICER: Grant(actor=FREE, officer_fields=True),
                Kind.PROGRAMME_SERVICE: Grant(actor=FREE),
                Kind.PARTY_SERVICE: Grant(reach=frozenset({Reach.PARTY}), parties=VISITOR_SIDE, actor=FREE),
                Kind.APPLICANT: Grant(actor=SELF),
            },
            actor_field="submitted_by",
            notes={
                Kind.OFFICER: "the import of an earlier record names its original submitter",
                Kind.PARTY_SERVICE: "an application whose visitor organisation or partnership it names",
            },
        ),
        Action("getExchange", "GET /exchanges/{id}", "read an exchange", EXCHANGE_READ, notes=READ_NOTES),
        Action(
            "getApplication", "GET /exchanges/{id}/application", "read the application", EXCHANGE_READ, notes=READ_NOTES
        ),
        Action(
            "listExchanges",
            "GET /exchanges",
            "list exchanges",
            EXCHANGE_READ,
            notes={k: "lists exactly the exchanges it may read" for k in EXCHANGE_READ},
        ),
        Action(
            "explainExchange", "GET /exchanges/{id}/explanation", "read explanations", EXCHANGE_READ, notes=READ_NOTES
        ),
        Action(
            "getLedgerHistory",
            "GET /exchanges/{id}/ledger",
            "read the ledger",
            {
                Kind.OFFICER: ANYWHERE,
                Kind.PROGRAMME_SERVICE: ANYWHERE,
                Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=ALL_PARTIES),
                Kind.OPS: ANYWHERE,
            },
        ),
    ]


def _message_actions() -> list[Action]:
    """One action per update and per routed signal of the contract, from their grant tables."""
    updates = [
        Action(
            camel(name),
            f"POST /exchanges/{{id}}/updates/{name}",
            f"send {name}",
            grants,
            actor_field="actor_id",
            party_act=PARTY_ACTS.get(name),
        )
        for name, grants in UPDATE_GRANTS.items()
    ]
    signals = [
        Action(
            camel(name),
            f"POST /exchanges/{{id}}/signals/{name}",
            f"send {name}",
            grants,
            actor_field=SIGNAL_ACTOR_FIELDS[name],
        )
        for name, grants in SIGNAL_GRANTS.items()
    ]
    return updates + signals


def _evidence_actions() -> list[Action]:
    """Uploading and reading an exchange's evidence."""
    return [
        Action(
            "uploadEvidence",
            "POST /exchanges/{id}/evidence",
            "upload evidence",
            {
                Kind.OFFICER: grant(Reach.ANY, actor=SELF),
                Kind.PARTY_SERVICE: grant(Reach.PARTY, parties=VISITOR_SIDE, actor=FREE),
                Kind.APPLICANT: grant(
                    Reach.SUBMITTER, Reach.PARTY, parties=frozenset({Party.VISITOR_ORGANISATION}), actor=SELF
                ),
            },
            actor_field="uploaded_by",
        ),
        Action("listEvidence", "GET /exchanges/{id}/evidence", "read evidence", EXCHANGE_READ),
    ]


def _reviewer_actions() -> list[Action]:
    """The review panel: its members, their unavailability and their inboxes."""
    return [
        Action("listReviewers", "GET /reviewers", "list reviewers", PROGRAMME_SIDE),
        Action("addReviewer", "POST /reviewers", "add reviewers", BACK_OFFICE),
        Action(
            "setReviewerUnavailability",
            "PUT /reviewers/{id}/unavailability",
            "set reviewers' unavailability",
            {Kind.OFFICER: NOT_AN_EXCHANGE, Kind.REVIEWER: Grant(own_record=True)},
        ),
        Action(
            "getReviewInbox",
            "GET /reviewers/{id}/inbox",
            "read review inboxes",
            {**PROGRAMME_SIDE, Kind.REVIEWER: Grant(own_record=True)},
        ),
    ]


def _programme_actions() -> list[Action]:
    """The programme's money and rules: budgets, partnerships, top-ups and the policy."""
    return [
        Action("listBudgets", "GET /budgets", "read budgets", PROGRAMME_SIDE),
        Action("listPartnerships", "GET /partnerships", "read partnerships", PROGRAMME_SIDE),
        Action("registerPartnership", "PUT /partnerships/{id}", "register partnerships", BACK_OFFICE),
        Action("topUpBudget", "POST /partnerships/{id}/top-ups", "top up budgets", BACK_OFFICE),
        Action(
            "listPolicyVersions",
            "GET /policies",
            "read the policy",
            dict.fromkeys(Kind, NOT_AN_EXCHANGE),
        ),
        Action("dryRunPolicy", "POST /policies/dry-run", "dry-run policies", PROGRAMME_SIDE),
        Action("exportPersonalData", "GET /privacy/people/{person}/export", "export a person's data", BACK_OFFICE),
        Action("erasePerson", "POST /privacy/people/{person}/erasure", "erase a person", BACK_OFFICE),
        # Issue 17, items 3 and 5: the Commission's KPIs (aggregates) for the programme's side; the row-level
        # exports (actor ids in payment orders, every ledger entry) for officers and programme services (an
        # auditors' system is one), not ops, never applicants, parties or reviewers.
        Action("getKpiReport", "GET /reports/kpis", "read the KPI report", PROGRAMME_SIDE),
        Action(
            "exportTable",
            "GET /exports/{kind}",
            "export exchanges, transfers and payment orders",
            {Kind.OFFICER: NOT_AN_EXCHANGE, Kind.PROGRAMME_SERVICE: NOT_AN_EXCHANGE},
        ),
    ]


def _actions() -> dict[str, Action]:
    """The one table, per resource in the order docs/security.md prints it; an operation id appears once."""
    actions = [
        *_exchange_actions(),
        *_message_actions(),
        *_evidence_actions(),
        *_reviewer_actions(),
        *_programme_actions(),
    ]
    table = {action.operation_id: action for action in actions}
    assert len(table) == len(actions), "every operation id names one action"
    return table


def _oversight() -> dict[str, Action]:
    """The back office's oversight (issue 14: the officer pages read these): counts, waitlists, stuck exchanges,
    timelines and payment orders are the programme side's; a timeline (every audit row: reviewers' names,
    officers' reasons) is the officers' and ops' only; the bulk import is the officers' (with the officer
    fields of an earlier record) and the programme services' (an import job, without them)."""
    officers_and_ops: Mapping[Kind, Grant] = {Kind.OFFICER: ANYWHERE, Kind.OPS: ANYWHERE}
    actions = [
        Action("countExchanges", "GET /exchange-counts", "count exchanges by stage", PROGRAMME_SIDE),
        Action("getWaitlist", "GET /partnerships/{id}/waitlist", "read waitlists", PROGRAMME_SIDE),
        Action("listStuckExchanges", "GET /stuck-exchanges", "list stuck exchanges", PROGRAMME_SIDE),
        Action("getExchangeTimeline", "GET /exchanges/{id}/timeline", "read the audit trail", officers_and_ops),
        Action("listPaymentOrders", "GET /payment-orders", "read payment orders", PROGRAMME_SIDE),
        Action("usePayloadCodec", "POST /codec/*", "use the payload codec", {Kind.OFFICER: Grant(), Kind.OPS: Grant()}),
        Action(
            "importApplications",
            "POST /imports",
            "import applications",
            {
                Kind.OFFICER: Grant(actor=FREE, officer_fields=True),
                Kind.PROGRAMME_SERVICE: Grant(actor=FREE),
            },
            actor_field="submitted_by",
            notes={
                Kind.OFFICER: "each row as `startExchange`: an earlier record names its original submitter",
                Kind.PROGRAMME_SERVICE: "each row as `startExchange`; a row setting an officer field is refused",
            },
        ),
    ]
    return {action.operation_id: action for action in actions}


ACTIONS: Mapping[str, Action] = {**_actions(), **_oversight()}
# The officer-only fields of a start (issue 11, item 2): each moves a rule (R13's lead time, R3, the
# policy in force), so only the back office importing a record may set them; the workflow records each
# use in the SUBMITTED audit row (`details.officer_fields`).
OFFICER_FIELDS = ("submitted_at", "policy_version", "host_agency_approved", "host_agency_approval_reference")


def grant_for(action: Action, who: Principal) -> Grant | None:
    """The cell for this principal, or None: the kind may not do this at all."""
    return action.grants.get(kind_of(who))


@dataclass(frozen=True)
class Facts:
    """What authorisation needs to know about one exchange."""

    submitted_by: str | None
    parties: Mapping[Party, str]
    assigned: bool = False  # the caller (a reviewer) has a standing assignment to it


def reaches(who: Principal, cell: Grant, facts: Facts | None, acted_for: Party | None = None) -> bool:
    """The principal stands to the exchange as one of the cell's ways; no facts (no exchange) reach only ANY."""
    if Reach.ANY in cell.reach:
        return True
    if facts is None:
        return False
    if Reach.SUBMITTER in cell.reach and facts.submitted_by == who.subject:
        return True
    if Reach.ASSIGNED in cell.reach and facts.assigned:
        return True
    if Reach.PARTY in cell.reach and any(
        holds(who, party, facts.parties[party]) for party in cell.parties if party in facts.parties
    ):
        return True
    return (
        Reach.ACTED_FOR in cell.reach
        and acted_for is not None
        and acted_for in facts.parties
        and holds(who, acted_for, facts.parties[acted_for])
    )


def actor_refusal(who: Principal, cell: Grant, actor: str | None) -> str | None:
    """Why the body's actor is not acceptable for this cell, or None when it is."""
    if cell.actor is Actor.SELF and actor != who.subject:
        return f"must be {who.subject!r}: you act only as yourself"
    return None


# Rendering, for docs/security.md and refusals ------------------------------------------------------------


def describe(cell: Grant | None, action: Action) -> str:
    """A cell in words: `—` for refused, else where it applies and as whom."""
    if cell is None:
        return "—"
    parts: list[str] = []
    ways: list[str] = []
    for reach in (Reach.ANY, Reach.SUBMITTER, Reach.ASSIGNED, Reach.PARTY, Reach.ACTED_FOR):
        if reach not in cell.reach:
            continue
        if reach is Reach.ANY:
            ways.append("any exchange")
        elif reach is Reach.SUBMITTER:
            ways.append("submitted it")
        elif reach is Reach.ASSIGNED:
            ways.append("assigned, no conflict declared")
        elif reach is Reach.PARTY:
            ways.append("holds " + "/".join(p.value for p in Party if p in cell.parties))
        else:
            ways.append("holds the party acted for")
    if ways:
        parts.append(" or ".join(ways))
    elif cell.own_record:
        parts.append("their own only")
    else:
        parts.append("yes")
    if cell.actor is Actor.SELF and action.actor_field:
        parts.append(f"as themselves (`{action.actor_field}`)")
    elif cell.actor is Actor.FREE and action.actor_field:
        parts.append(f"`{action.actor_field}` free")
    if cell.officer_fields:
        parts.append("officer fields")
    return "; ".join(parts)
