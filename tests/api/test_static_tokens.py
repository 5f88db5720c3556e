"""Static tokens (issue 16, item 6): strong enough, expiring, rotated by rewriting their file, never printed."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clients.api.auth import Principal, TokenConfigError
from clients.api.static_tokens import RELOAD_CHECK_S, StaticTokens, parse_token_table, strength_refusal
from clients.web.session import Tokens, sha256_hex

OLD = "Qw7-Zt2pLx9VmR4kNc0HsY6dBf8JgE3a"
NEW = "Hn5_Rc8wKq1TzM7yLp3XsV0dGf6JbA2e"
OFFICER = {"subject": "anna", "role": "officer"}


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("a" * 16, "at least 32"),
        ("a" * 64, "distinct"),
        ("abcdefgh" * 4, "shorter pattern"),
        ("a" * 24 + "bcdefghijk", "repeats"),
        ("password-password-password-12345", "placeholder"),
        ("change-me-officer-token-0123456789", "placeholder"),
        ("pa55-wOrd-pa55-wOrd-pa55-wOrd-xyz", "repeats its own pieces"),
    ],
)
def test_weak_tokens_are_refused_naming_the_entry_never_the_token(token: str, rule: str) -> None:
    """A 16-character token of one letter (the issue's example), one letter repeated, a repeated pattern, a
    token mostly one character, a word repeated: refused at start, naming the entry and its subject only."""
    with pytest.raises(TokenConfigError) as caught:
        parse_token_table(json.dumps({token: OFFICER}))
    assert rule in str(caught.value)
    assert "entry #1 ('anna')" in str(caught.value)
    assert token not in str(caught.value)
    assert strength_refusal(OLD) is None


def test_an_expired_token_names_nobody() -> None:
    """`expires` is an instant with its offset; past it the token finds no principal (the API answers 401) and
    its web sessions end; a date without an offset is refused."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    table = StaticTokens(
        parse_token_table(
            json.dumps({OLD: {**OFFICER, "expires": "2020-01-01T00:00:00Z"}, NEW: {**OFFICER, "expires": later}})
        )
    )
    assert table.find(OLD) is None
    assert table.find(NEW) == Principal(subject="anna", role="officer")
    assert Tokens(table).by_fingerprint(sha256_hex(OLD)) is None
    assert Tokens(table).by_fingerprint(sha256_hex(NEW)) is not None
    with pytest.raises(TokenConfigError, match="expires"):
        parse_token_table(json.dumps({OLD: {**OFFICER, "expires": "2027-01-01T00:00:00"}}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_rewritten_file_rotates_tokens_without_a_restart(tmp_path: Path) -> None:
    """CX_API_TOKENS_FILE is looked at no more than every RELOAD_CHECK_S: after a rewrite the old token works
    until then, and afterwards only the new one does (web sessions follow); a broken rewrite keeps the last good
    table and says why without quoting a token."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({OLD: OFFICER}))
    clock, errors = Clock(), list[str]()
    table = StaticTokens(parse_token_table(path.read_text()), path=path, clock=clock, on_reload_error=errors.append)
    web = Tokens(table)
    assert table.find(OLD) is not None
    path.write_text(json.dumps({NEW: OFFICER}))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    assert table.find(OLD) is not None, "not looked at again before RELOAD_CHECK_S"
    clock.now += RELOAD_CHECK_S
    assert table.find(OLD) is None
    assert table.find(NEW) is not None
    assert web.by_fingerprint(sha256_hex(NEW)) is not None
    assert web.by_fingerprint(sha256_hex(OLD)) is None
    path.write_text('{"' + OLD + '": {"subject": "anna", "role": "officer"')  # half written
    os.utime(path, ns=(path.stat().st_mtime_ns + 2 * 10**9,) * 2)
    clock.now += RELOAD_CHECK_S
    assert table.find(NEW) is not None, "the last good table stays in force"
    assert len(errors) == 1
    assert "previous tokens stay in force" in errors[0]
    assert OLD not in errors[0]
    assert NEW not in errors[0]
