"""Static bearer tokens: strong, expiring, and re-read from their file when it changes (issue 16, item 6).

The table comes from `CX_API_TOKENS` (JSON in the environment, fixed for the process's life) or from
`CX_API_TOKENS_FILE` (the same JSON in a file, re-read when its modification time changes, looked at no
more than once every `RELOAD_CHECK_S` seconds), so an operator rotates a token by rewriting the file: no
restart (docs/operations.md, "Identities"; ADR 0023). Each token must be long and varied enough to resist
guessing (`strength_refusal`) and may carry an `"expires"` instant, after which it answers 401.
Nothing here ever prints a token: refusals name the entry by position and subject.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from clients.api.auth import Principal, TokenConfigError

# 32 characters of a 64-letter alphabet (`secrets.token_urlsafe(24)`) are 192 bits; a hex token of 32 is 128.
MIN_TOKEN_LENGTH = 32
# One letter repeated, `abab...`, a word padded to length: too few distinct characters to be random. A random
# token of 32 URL-safe characters has about 25 distinct ones; a hex one 14, and fails these rules about once in
# 30,000 draws (then draw another).
MIN_DISTINCT_CHARACTERS = 8
# A word repeated (`password-password-...`) has many characters yet repeats its three-letter pieces; in a random
# token nearly every piece is new: at least this share of them must be distinct.
MIN_DISTINCT_TRIGRAM_SHARE = 0.75
# Words of templates and examples (deploy/secrets/*.example): a token copied from one is known to everybody.
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "example", "placeholder", "password")
# A token mostly made of one character (`aaaa...` with a few others to pass the count above) is not random:
# no character may make up more than this share of it.
MAX_SHARE_OF_ONE_CHARACTER = 1 / 3
# How often a request may look at the file's modification time: a stat per request would be wasted, and a
# rotated token is live within this many seconds.
RELOAD_CHECK_S = 5.0

_SHAPE = '{"<token>": {"subject": "...", "role": "...", "organisations": [...], "expires": "2027-01-01T00:00:00Z"}}'


def strength_refusal(token: str) -> str | None:
    """Why `token` is too weak to stand for anyone, or None. Never quotes the token."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"must be at least {MIN_TOKEN_LENGTH} characters: make one with Python's secrets.token_urlsafe(32)"
    if any(word in token.lower() for word in PLACEHOLDER_WORDS):
        return "is a template's placeholder (it says change-me, example or password): make a random one"
    distinct = len(set(token))
    if distinct < MIN_DISTINCT_CHARACTERS:
        return f"has only {distinct} distinct characters (at least {MIN_DISTINCT_CHARACTERS}): it is not random"
    if token in (token + token)[1:-1]:
        return "repeats a shorter pattern: it is not random"
    trigrams = [token[i : i + 3] for i in range(len(token) - 2)]
    if len(set(trigrams)) < MIN_DISTINCT_TRIGRAM_SHARE * len(trigrams):
        return "repeats its own pieces (a word or pattern over and over): it is not random"
    most = max(token.count(character) for character in set(token))
    if most > MAX_SHARE_OF_ONE_CHARACTER * len(token):
        return f"repeats one character {most} times: it is not random"
    return None


class _Expiry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    expires: AwareDatetime | None = None


@dataclass(frozen=True)
class StaticToken:
    """One configured token's principal and, when it has one, the instant it stops working."""

    principal: Principal
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def parse_token_table(raw: str | None, source: str = "CX_API_TOKENS") -> dict[str, StaticToken]:
    """Parse the JSON table of `source` (see _SHAPE): every token strong, every entry a Principal, `expires`
    optional (an ISO 8601 instant with its offset). Raises TokenConfigError naming the entry, never the token."""
    if not raw:
        raise TokenConfigError(f"{source} is not set: give JSON {_SHAPE}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise TokenConfigError(f"{source} is not valid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(data, dict) or not data:
        raise TokenConfigError(f"{source} must be a non-empty JSON object: {_SHAPE}")
    table: dict[str, StaticToken] = {}
    for index, (token, value) in enumerate(data.items()):
        # The entry's subject names it; the token itself is a secret and never printed.
        where = f"{source} entry #{index + 1} ({value.get('subject') if isinstance(value, dict) else None!r})"
        weak = strength_refusal(token)
        if weak:
            raise TokenConfigError(f"{where}: the token {weak}")
        try:
            fields = {k: v for k, v in value.items() if k != "expires"} if isinstance(value, dict) else value
            principal = Principal.model_validate(fields)
            expiry = _Expiry.model_validate(value)
        except ValidationError as error:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors())
            raise TokenConfigError(f"{where}: {details}") from None
        table[token] = StaticToken(principal, expiry.expires)
    return table


class StaticTokens:
    """The live table of static tokens: fixed (CX_API_TOKENS, tests) or read from a file that may change.

    `find` answers the principal of a token that is configured and not expired. With a file, the first call
    after `RELOAD_CHECK_S` seconds compares the file's modification time (and size) with the last read and
    re-reads it when they differ; a file that no longer parses keeps the previous table and reports why
    through `on_reload_error` (the process logs it), so a half-written file never locks everybody out.
    """

    def __init__(
        self,
        table: Mapping[str, StaticToken],
        *,
        path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_reload_error: Callable[[str], None] | None = None,
    ) -> None:
        self._table = dict(table)
        self._path = path
        self._clock = clock
        self._on_reload_error = on_reload_error
        self._checked_at = clock()
        self._stamp = _stamp_of(path) if path is not None else None

    @classmethod
    def fixed(cls, principals: Mapping[str, Principal]) -> StaticTokens:
        """A table that never changes and never expires (tests, and callers that built principals themselves)."""
        return cls({token: StaticToken(who) for token, who in principals.items()})

    @classmethod
    def from_file(cls, path: Path, on_reload_error: Callable[[str], None] | None = None) -> StaticTokens:
        """The table in `path` (CX_API_TOKENS_FILE), read now (TokenConfigError if it is missing or malformed)."""
        return cls(_read_file(path), path=path, on_reload_error=on_reload_error)

    def find(self, token: str, now: datetime | None = None) -> Principal | None:
        entry = self.entries().get(token)
        if entry is None or not entry.live(now or datetime.now(UTC)):
            return None
        return entry.principal

    def entries(self) -> Mapping[str, StaticToken]:
        """The current table, re-read first when the file changed (checked at most every RELOAD_CHECK_S)."""
        if self._path is not None and self._clock() - self._checked_at >= RELOAD_CHECK_S:
            self._reload(self._path)
        return self._table

    def _reload(self, path: Path) -> None:
        self._checked_at = self._clock()
        stamp = _stamp_of(path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._table = _read_file(path)
        except TokenConfigError as error:
            if self._on_reload_error is not None:
                self._on_reload_error(f"{error}; the previous tokens stay in force")


def _stamp_of(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read_file(path: Path) -> dict[str, StaticToken]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TokenConfigError(f"CX_API_TOKENS_FILE {str(path)!r}: cannot be read ({type(error).__name__})") from None
    return parse_token_table(raw, source=f"CX_API_TOKENS_FILE {str(path)!r}")


def parse_tokens(raw: str | None) -> StaticTokens:
    """The fixed table of `CX_API_TOKENS`' value (TokenConfigError naming the entry when it is refused)."""
    return StaticTokens(parse_token_table(raw))


def load_tokens(variables: Mapping[str, str]) -> StaticTokens:
    """`parse_tokens` of the `CX_API_TOKENS` entry of a mapping of variables (tests, tools)."""
    return parse_tokens(variables.get("CX_API_TOKENS"))
