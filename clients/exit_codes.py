"""The exit codes of every `cx` command, defined once (issue 10, item 5; documented in docs/operations.md).

Scripts branch on them, so a value never changes meaning: a new kind of outcome gets a new number.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a `cx` command's exit status means; the one-line message on stderr says the rest."""

    OK = 0  # done (also: a repeat that found the work already done, e.g. "already booked")
    REFUSED = 1  # understood and refused by a rule of the programme, or a check found a breach
    USAGE = 2  # invalid input: an unknown option value, a malformed argument, payload, file or setting
    NOT_FOUND = 3  # the exchange, partnership, reviewer or payment order named does not exist
    CONFLICT = 4  # contradicts what is already recorded (a reference reused for other content, a duplicate)
    UNAVAILABLE = 5  # a server cannot be reached or is not ready (not configured, down, login refused, not migrated)
    INTERNAL = 6  # an unexpected failure: a bug to report with the message
    DIFFERENCES = 7  # `cx reconcile` ran to the end and found differences (each printed; nothing was changed)
    INTERRUPTED = 130  # stopped with Ctrl-C (128 + SIGINT, as shells report it)

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "done (a repeat that finds the work already done included)",
    ExitCode.REFUSED: "refused by a rule of the programme, or a check found a breach",
    ExitCode.USAGE: "invalid input: unknown option value, malformed argument, payload, file or setting",
    ExitCode.NOT_FOUND: "the exchange, partnership, reviewer or payment order named does not exist",
    ExitCode.CONFLICT: "contradicts what is already recorded",
    ExitCode.UNAVAILABLE: "a server cannot be reached or is not ready",
    ExitCode.INTERNAL: "unexpected failure (a bug)",
    ExitCode.DIFFERENCES: "the reconciliation found differences (listed; nothing was changed)",
    ExitCode.INTERRUPTED: "stopped with Ctrl-C",
}
