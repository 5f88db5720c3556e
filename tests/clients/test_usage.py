"""The `cx` conventions every command shares: enum options refuse unknown values, one table of exit codes
(the code and docs/operations.md agree), and one style for euros (issue 10, items 3 to 5)."""

from __future__ import annotations

import re

import pytest

from clients.exit_codes import ExitCode
from clients.money import InvalidAmount, format_eur, format_optional_eur, parse_eur
from clients.payment_commands import OrderState
from clients.payments import PaymentOrder
from rules.pricing import format_eur as pricing_format_eur
from tests.clients.test_cli import ROOT, cx


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["list", "--stage", "bogus"], "'--stage'", "'review'"),
        (["payments", "--state", "lost"], "'--state'", "'overdue'"),
        (
            [
                *("reviewers", "add", "--id", "a", "--name", "A", "--organisation", "o", "--country", "DE"),
                *("--partnership", "p", "--role", "auditor"),
            ],
            "'--role'",
            "'programme_officer'",
        ),
        (["evidence", "add", "app-1", "README.md", "--kind", "passport", "--as", "v"], "'--kind'", "'boarding_pass'"),
        (["decide", "app-1", "approve", "--data", "{}"], "'update'", "submit_review"),
        (["signal", "app-1", "paid", "--data", "{}"], "'name'", "confirm_payment"),
    ],
)
def test_an_unknown_choice_is_a_usage_error_listing_the_allowed_values(
    args: list[str], option: str, allowed: str
) -> None:
    """`cx list --stage bogus` and every other option or argument over a fixed set refuse an unknown value in
    one line that names it and lists what is allowed, exit 2, before anything is contacted."""
    result = cx(*args)
    assert result.returncode == ExitCode.USAGE, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0, line
    assert "Traceback" not in line, line
    assert line.startswith("error: "), line
    assert option in line, line
    assert allowed in line, line
    assert result.stdout == ""


def test_choices_are_case_insensitive_where_the_values_are_words() -> None:
    """`--stage review` is REVIEW (as before the choice was enforced): it reaches the database step, which
    here is not configured (exit 5), instead of being refused as usage."""
    result = cx("list", "--stage", "review")
    assert result.returncode == ExitCode.UNAVAILABLE
    assert "DATABASE_URL" in result.stderr


def test_the_exit_code_table_in_the_docs_is_the_one_in_the_code() -> None:
    """docs/operations.md lists exactly the ExitCode members, with their numbers and names."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", section, flags=re.MULTILINE)
    assert [(int(number), name) for number, name in rows] == [(code.value, code.name) for code in ExitCode]
    assert all(code.meaning for code in ExitCode)


def test_no_arguments_prints_help_with_the_usage_code() -> None:
    """`cx` alone prints the command list (help) and exits 2, as a missing command is a usage error."""
    result = cx()
    assert result.returncode == ExitCode.USAGE
    assert "top-up" in result.stdout + result.stderr


def test_euros_read_the_same_in_every_command() -> None:
    """The CLI's EUR style is the one pricing reasons use: thousands separators, two decimals, no float."""
    for cents in (0, 5, 110_000, 95_050, 700_000_000, -1_234_567, 10**17 + 1):
        assert format_eur(cents) == pricing_format_eur(cents)
    assert format_eur(110_000) == "1,100.00 EUR"
    assert format_optional_eur(None) == "not priced yet"


@pytest.mark.parametrize(
    ("text", "cents"), [("25000", 2_500_000), ("1250.50", 125_050), ("0.01", 1), ("7", 700), ("3.5", 350)]
)
def test_plain_euro_amounts_parse_to_exact_cents(text: str, cents: int) -> None:
    """Plain digits with at most two decimals are taken exactly as typed."""
    assert parse_eur(text, field="amount_eur", maximum_cents=10**12) == cents


@pytest.mark.parametrize(
    "text", ["Infinity", "-Infinity", "NaN", "1e400", "1E2", "-5", "0", "0.00", "1.234", "1.230", " 5", "1_000", "+5"]
)
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    """Non-finite, exponent, signed, zero, sub-cent and decorated amounts are refused with the field named."""
    with pytest.raises(InvalidAmount, match=r"^amount_eur '.*': "):
        parse_eur(text, field="amount_eur", maximum_cents=10**12)


def test_payment_states_are_the_ones_orders_answer() -> None:
    """`--state` offers exactly the states PaymentOrder.state can return."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 1, tzinfo=UTC)
    order = PaymentOrder("po-a", "a", "p", 100, now - timedelta(days=1), None, None, None, None)
    seen = {
        order.state(now, 10),
        PaymentOrder("po-a", "a", "p", 100, now, now, None, None, None).state(now, 10),
        PaymentOrder("po-a", "a", "p", 100, now - timedelta(days=11), now, None, None, None).state(now, 10),
        PaymentOrder("po-a", "a", "p", 100, now, now, now, "SEPA-1", "finance").state(now, 10),
    }
    assert seen == {state.value for state in OrderState}
