"""AGREEMENT (R10): both sides confirm the match and the four parties sign the Commitment to Quality.

Each act counts only from someone acting for that party (`on_behalf_of` is the party's own organisation
or partnership, `status.parties` names them) and one person signs for one party only. Reminders go to
whoever is missing before the deadline; an agreement incomplete at its deadline LAPSES (its hold is
voided on the way out). Messages: sign_commitment, confirm_match.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.errors import Refusal, refused
    from schemas.events import DeadlineKey, EventName
    from schemas.exchange import ConfirmMatchInput, Party, SignCommitmentInput
    from schemas.stages import Stage
    from workflows.exchange.context import SYSTEM_ACTOR, Ended, Exchange

SIDES = {"host": Party.HOST_ORGANISATION, "visitor": Party.VISITOR_ORGANISATION}


class AgreementStage:
    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.signatures: dict[Party, str] = {}
        self.match: dict[str, str] = {}  # side -> who confirmed

    async def run(self) -> None:
        ex = self.ex
        if ex.stage is not Stage.AGREEMENT:  # reached from the waitlist: FUNDING's activity did not enter it
            ex.deadlines[DeadlineKey.SIGNATURES] = workflow.now() + timedelta(days=ex.policy.deadlines.signature_days)
            ex.enter(Stage.AGREEMENT, SYSTEM_ACTOR)
        due = ex.deadlines[DeadlineKey.SIGNATURES]
        reminders = sorted(due - timedelta(days=d) for d in ex.policy.deadlines.signature_reminder_days_before)
        for reminder_at in [r for r in reminders if r > workflow.now()]:
            if await ex.wait_until(self.complete, reminder_at):
                return
            ex.record(EventName.AGREEMENT_REMINDER, SYSTEM_ACTOR, f"due {due.isoformat()}", {"missing": self.missing()})
        if not await ex.wait_until(self.complete, due):
            raise Ended(Stage.LAPSED, f"agreement incomplete by {due.isoformat()}: missing {', '.join(self.missing())}")

    def complete(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        missing = [p.value for p in Party if p not in self.signatures]
        return missing + [f"match confirmation by {side}" for side in SIDES if side not in self.match]

    def parties(self) -> dict[Party, str]:
        """R10's parties of this exchange: the organisation or partnership each one is."""
        app = self.ex.app
        return {
            Party.HOST_ORGANISATION: app.host.organisation_id,
            Party.HOST_PARTNERSHIP: app.host_partnership_id,
            Party.VISITOR_ORGANISATION: app.visitor.organisation_id,
            Party.VISITOR_PARTNERSHIP: app.visitor_partnership_id,
        }

    # --- messages ----------------------------------------------------------------------------------------

    def sign(self, signature: SignCommitmentInput) -> None:
        self.signatures[signature.party] = signature.actor_id
        self.ex.record(EventName.COMMITMENT_SIGNED, signature.actor_id, f"signed as {signature.party.value}")

    def confirm_match(self, confirmation: ConfirmMatchInput) -> None:
        self.match[confirmation.side] = confirmation.actor_id
        self.ex.record(EventName.MATCH_CONFIRMED, confirmation.actor_id, f"confirmed by the {confirmation.side}")

    def validate_signature(self, signature: SignCommitmentInput) -> None:
        self.ex.require_stage("sign_commitment", {Stage.AGREEMENT})
        if signature.party in self.signatures:
            raise refused(
                Refusal.ALREADY_RECORDED,
                f"party: {signature.party.value} already signed (by {self.signatures[signature.party]})",
            )
        require_party(signature.on_behalf_of, self.parties()[signature.party], f"party {signature.party}")
        # Four parties, four signatories: one person cannot sign for two of them (issue 11).
        other = next((p for p, actor in self.signatures.items() if actor == signature.actor_id), None)
        if other is not None:
            raise refused(
                Refusal.NOT_ALLOWED,
                f"actor_id: {signature.actor_id} already signed for {other.value}; each party signs by its own person",
            )

    def validate_match(self, confirmation: ConfirmMatchInput) -> None:
        self.ex.require_stage("confirm_match", {Stage.AGREEMENT})
        if confirmation.side in self.match:
            raise refused(
                Refusal.ALREADY_RECORDED,
                f"side: the {confirmation.side} already confirmed (by {self.match[confirmation.side]})",
            )
        expected = self.parties()[SIDES[confirmation.side]]
        require_party(confirmation.on_behalf_of, expected, f"{confirmation.side} organisation")


def require_party(on_behalf_of: str | None, expected: str, what: str) -> None:
    """A party's act counts only from someone acting for that party's own organisation or partnership."""
    if on_behalf_of is None:
        raise refused(
            Refusal.INVALID_INPUT,
            f"on_behalf_of: required: the organisation or partnership the actor represents ({what}: {expected})",
        )
    if on_behalf_of != expected:
        raise refused(
            Refusal.NOT_ALLOWED,
            f"on_behalf_of: {on_behalf_of} is not the {what} of this exchange ({expected}); "
            "a party acts only for itself",
        )
