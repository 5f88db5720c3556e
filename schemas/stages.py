"""The lifecycle stages of an exchange (ARCHITECTURE.md, "The exchange lifecycle")."""

from enum import StrEnum

# The engine's own actor id in the audit trail: its reasons are the engine's words, never a person's.
SYSTEM_ACTOR = "system"


class Stage(StrEnum):
    SUBMITTED = "SUBMITTED"
    SCREENING = "SCREENING"
    REVIEW = "REVIEW"
    FUNDING = "FUNDING"
    WAITLISTED = "WAITLISTED"
    AGREEMENT = "AGREEMENT"
    TRAVEL = "TRAVEL"
    REPORTING = "REPORTING"
    PAYMENT = "PAYMENT"
    # Terminal stages.
    PAID = "PAID"
    INELIGIBLE = "INELIGIBLE"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    LAPSED = "LAPSED"
    WITHDRAWN = "WITHDRAWN"
    CANCELLED = "CANCELLED"
    FORFEITED = "FORFEITED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STAGES


TERMINAL_STAGES = frozenset(
    {
        Stage.PAID,
        Stage.INELIGIBLE,
        Stage.REJECTED,
        Stage.EXPIRED,
        Stage.LAPSED,
        Stage.WITHDRAWN,
        Stage.CANCELLED,
        Stage.FORFEITED,
    }
)
# Until the stay starts the visitor may withdraw; an officer may cancel until payment.
WITHDRAWABLE_STAGES = frozenset(
    {Stage.SUBMITTED, Stage.SCREENING, Stage.REVIEW, Stage.FUNDING, Stage.WAITLISTED, Stage.AGREEMENT, Stage.TRAVEL}
)
CANCELLABLE_STAGES = WITHDRAWABLE_STAGES | {Stage.REPORTING}
