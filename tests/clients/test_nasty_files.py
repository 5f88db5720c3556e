"""No input makes `cx` print a traceback (issue 11, item 7): a corpus of nasty files fed to every command that
reads one (`cx submit`, `cx import`, `cx decide --file`, `cx signal --file`, `cx policy simulate`,
`cx evidence add`) as subprocesses, and the rules of clients/input_files.py one by one."""

from __future__ import annotations

import codecs
import json
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clients.exit_codes import ExitCode
from clients.input_files import MAX_INPUT_BYTES, MAX_JSON_DEPTH
from tests.clients.test_cli import cx
from tests.factories import application

# What a command may answer to bad input: never INTERNAL (a bug) and never an undocumented code.
ANSWERS = {ExitCode.REFUSED, ExitCode.USAGE, ExitCode.NOT_FOUND, ExitCode.CONFLICT, ExitCode.UNAVAILABLE}
# A refusal is one line; a few more are allowed for a report (cx import prints a line per refused row).
MAX_STDERR_LINES = 3


def _application_json() -> str:
    return json.dumps(application().model_dump(mode="json"), indent=2)


def nasty_files(directory: Path) -> dict[str, Path]:
    """The corpus: each a file (or a path) that some command once met badly, or could."""
    noise = random.Random(11)
    csv_header = "application_id,visitor_name,visitor_country\n"
    contents: dict[str, bytes] = {
        "binary": noise.randbytes(4096),
        "latin-1": "application_id,visitor_name\napp-1,Société Générale\n".encode("latin-1"),
        "invalid-utf8-in-the-middle": b'{"application_id": "app-1", "goals": "ok \xc3\x28 ok"}',
        "utf-16": "[]".encode("utf-16"),
        "nul-bytes": b'{"application_id": "app\x00-1"}',
        "empty": b"",
        "bom-only": codecs.BOM_UTF8,
        "nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
        "nested-objects-100k-deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "nested-just-over-the-limit": b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        "nan-and-infinity": b'{"application_id": NaN, "latitude": Infinity}',
        "number-too-large": b'{"latitude": 1e400}',
        "integer-of-5000-digits": b'{"amount_cents": ' + b"9" * 5000 + b"}",
        "duplicate-keys": b'{"application_id": "a", "application_id": "b"}',
        "control-characters-in-keys": b'{"a\\nb\\u001b[31m": 1}',
        "lone-surrogate": b'{"goals": "\\ud800"}',
        "json-list-not-object": b"[1, 2, 3]",
        "json-string": b'"just a string"',
        "truncated-json": _application_json().encode()[:-40],
        "csv-wrong-columns": b"name,when,where\nx,y,z\n",
        "csv-broken-quotes": (csv_header + 'app-1,"Lyon Optics,FR\napp-2,x,"PL"y\n').encode(),
        "csv-ragged-rows": (csv_header + "app-1,x\napp-2,x,PL,extra,more\n").encode(),
        "csv-huge-field": (csv_header + "app-1," + "x" * 200_000 + ",PL\n").encode(),
        "csv-header-only": csv_header.encode(),
        "csv-excel-semicolons-latin-1": "application_id;visitor_name\napp-1;Müller\n".encode("cp1252"),
        "toml-nested-arrays": b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "pdf-header-then-zip": b"%PDF-1.4\n%%EOF\nPK\x03\x04" + noise.randbytes(100),
    }
    paths: dict[str, Path] = {}
    for name, data in contents.items():
        path = directory / f"{name}.json"
        path.write_bytes(data)
        paths[name] = path
    too_big = directory / "over-the-size-limit.json"
    with too_big.open("wb") as handle:
        handle.truncate(MAX_INPUT_BYTES + 1)  # sparse: only its size matters
    paths["over-the-size-limit"] = too_big
    paths["a-directory"] = directory
    paths["dev-null"] = Path("/dev/null")
    paths["missing"] = directory / "no-such-file.json"
    loop_a, loop_b = directory / "loop-a.json", directory / "loop-b.json"
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    paths["symlink-loop"] = loop_a
    newline_name = directory / "evil\nname\x1b[31m.json"
    newline_name.write_text("{")
    paths["newline-in-the-name"] = newline_name
    return paths


# The whole corpus goes to the two bulk doors; the other readers get the files that differ for them.
_EVERY_READER_GETS = (
    *("binary", "latin-1", "nested-100k-deep", "a-directory", "dev-null", "empty", "over-the-size-limit"),
)


def _commands(name: str, path: Path) -> list[list[str]]:
    as_csv = path.with_name(path.name + ".csv")
    if path.is_file() and not as_csv.exists():
        as_csv.write_bytes(path.read_bytes())
    commands = [["submit", str(path)], ["import", str(path)], ["import", str(as_csv) if as_csv.exists() else str(path)]]
    if name in _EVERY_READER_GETS:
        commands += [
            ["decide", "app-1", "submit_review", "--file", str(path)],
            ["signal", "app-1", "confirm_payment", "--file", str(path)],
            ["policy", "simulate", str(path)],
            ["evidence", "add", "app-1", str(path), "--kind", "other", "--as", "officer"],
        ]
    return commands


# Every file of the corpus through several commands, each a fresh `cx` process (about 1 s of CPU apiece):
# 40 to 130 s on a shared 2-CPU machine, more than the default limit allows for.
@pytest.mark.timeout(360)
def test_no_file_makes_any_command_print_a_traceback(tmp_path: Path) -> None:
    """`cx submit` and `cx import` (as .json and as .csv) answer every file of the corpus, and the other
    commands that read a file (`decide --file`, `signal --file`, `policy simulate`, `evidence add`) its
    representatives, with an exit code from the documented set (never INTERNAL), a short stderr, and no
    traceback. No server is configured, so nothing is ever contacted with a file that was refused."""
    runs = [(name, command) for name, path in nasty_files(tmp_path).items() for command in _commands(name, path)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda run: cx(*run[1]), runs))
    failures = []
    for (name, command), result in zip(runs, results, strict=True):
        output = result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        if (
            result.returncode not in ANSWERS
            or "Traceback" in output
            or "unexpected" in result.stderr
            or len(lines) > MAX_STDERR_LINES
            or "\x1b[31m" in output  # an escape sequence from the input reached the terminal
        ):
            failures.append((name, command[0], result.returncode, result.stderr[-300:]))
    assert failures == [], f"{len(failures)} of {len(runs)} runs misbehaved: {failures[:5]}"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("latin-1", "not UTF-8: byte 0xE9 at offset 38 (line 2, column 11); save it as UTF-8"),
        ("invalid-utf8-in-the-middle", "not UTF-8: byte 0xC3 at offset 41 (line 1, column 42)"),
        ("utf-16", "is UTF-16 little-endian (byte-order mark at the start); save it as UTF-8"),
        ("nul-bytes", "a NUL character at line 1, column 24; is it a binary file?"),
        ("empty", "is empty (0 bytes)"),
        ("nested-100k-deep", "is nested too deeply; at most 32 levels"),
        ("nested-objects-100k-deep", "is nested too deeply; at most 32 levels"),
        ("nested-just-over-the-limit", "nested more than 32 levels deep"),
        ("nan-and-infinity", "NaN is not a JSON number"),
        ("number-too-large", "the number 1e400 is too large"),
        ("integer-of-5000-digits", "an integer with more than 4,300 digits"),
        ("duplicate-keys", "the key 'application_id' appears twice in one object"),
        ("json-list-not-object", "one application as a JSON object"),
        ("truncated-json", "not valid JSON ("),
        ("over-the-size-limit", "10,485,761 bytes, over the 10 MiB limit; split it"),
        ("a-directory", "is a directory, not a file"),
        ("dev-null", "is not a regular file"),
        ("missing", "no such file"),
        ("symlink-loop", "cannot be read (Too many levels of symbolic links)"),
        ("newline-in-the-name", "evil\\nname\\x1b[31m.json"),
        ("control-characters-in-keys", "a\\nb\\x1b[31m (line 1): Extra inputs are not permitted"),
        ("lone-surrogate", "not valid JSON (a lone surrogate \\ud800 in a string, which is no character"),
    ],
)
def test_cx_submit_names_the_file_and_the_rule_in_one_line(tmp_path: Path, name: str, words: str) -> None:
    """`cx submit` refuses each nasty file with exit 2 in one line that names the file and the rule (with
    the byte offset, line and column where there is one); non-printable characters come out escaped."""
    path = nasty_files(tmp_path)[name]
    result = cx("submit", str(path))
    assert result.returncode == ExitCode.USAGE, (result.returncode, result.stderr)
    line = result.stderr.strip()
    assert line.count("\n") == 0, line
    assert "Traceback" not in line, line
    assert words in line, line


def test_a_field_is_named_with_its_line_in_the_file(tmp_path: Path) -> None:
    """A field that breaks the contract is named with the line it is on, so it can be found in the file."""
    data = application().model_dump(mode="json")
    data["host"]["latitude"] = 123.0
    path = tmp_path / "application.json"
    path.write_text(json.dumps(data, indent=2))
    line_of_latitude = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"latitude": 123.0' in text)
    result = cx("submit", str(path))
    assert result.returncode == ExitCode.USAGE
    assert f"application.json: host.latitude (line {line_of_latitude}): " in result.stderr, result.stderr


@pytest.mark.parametrize("encode", [lambda text: codecs.BOM_UTF8 + text.encode(), lambda text: text.encode()])
def test_utf8_with_or_without_a_byte_order_mark_is_read(tmp_path: Path, encode: Callable[[str], bytes]) -> None:
    """A valid application saved as UTF-8 with or without a byte-order mark passes every file check: the
    command goes on to contact Temporal, which is not configured here (exit 5), instead of refusing the file."""
    path = tmp_path / "application.json"
    path.write_bytes(encode(_application_json()))
    result = cx("submit", str(path))
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    assert "TEMPORAL_ADDRESS" in result.stderr, result.stderr


def test_decide_and_signal_refuse_bad_data_in_one_line() -> None:
    """`--data` follows the same rules as a file: NaN, a duplicate key, deep nesting, a list instead of an
    object and a key with a newline are each one line naming `--data`, exit 2."""
    cases = {
        '{"amount_cents": NaN}': "--data: not valid JSON (NaN is not a JSON number",
        '{"actor_id": "a", "actor_id": "b"}': "--data: not valid JSON (the key 'actor_id' appears twice",
        "[" * 50_000 + "]" * 50_000: "--data: not valid JSON (the value at line 1, column 1 is nested too deeply",
        "[]": "--data: the payload must be a JSON object",
        '{"evil\\nkey": 1}': "evil\\nkey",
    }
    for data, words in cases.items():
        for command in (["decide", "app-1", "submit_review"], ["signal", "app-1", "confirm_payment"]):
            result = cx(*command, "--data", data)
            assert result.returncode == ExitCode.USAGE, (data[:40], result.stderr)
            line = result.stderr.strip()
            assert line.count("\n") == 0, (data[:40], line)
            assert words in line, (data[:40], line)


def test_policy_simulate_reads_files_by_the_same_rules(tmp_path: Path) -> None:
    """`cx policy simulate` refuses a Latin-1 file, TOML nested 100,000 deep and a directory in one line each."""
    files = nasty_files(tmp_path)
    expected = {
        "latin-1": "not UTF-8: byte 0xE9",
        "toml-nested-arrays": "not valid TOML (nested too deeply)",
        "a-directory": "is a directory, not a file",
    }
    for name, words in expected.items():
        result = cx("policy", "simulate", str(files[name]))
        assert result.returncode == ExitCode.USAGE, (name, result.stderr)
        assert result.stderr.strip().count("\n") == 0, (name, result.stderr)
        assert words in result.stderr, (name, result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["top-up", "biginn", "Infinity", "--reference", "R-1"],
        ["top-up", "biginn", "NaN", "--reference", "R-1"],
        ["top-up", "biginn", "1e400", "--reference", "R-1"],
        ["top-up", "biginn", "-5", "--reference", "R-1"],
        ["top-up", "biginn", "1.234", "--reference", "R-1"],
        ["list", "--limit", "Infinity"],
        ["list", "--limit", "1e400"],
        ["list", "--limit", "-5"],
        ["list", "--limit", "1.5"],
        ["list", "--limit", "99999999999999999999999"],
        ["api", "--port", "NaN"],
        ["api", "--port", "70000"],
        ["budget", "--as-of", "9999999-01-01T00:00:00Z"],
        ["reviewers", "set-unavailable", "anna", "--until", "99999-12-31"],
    ],
)
def test_numbers_and_dates_are_validated_in_one_line(args: list[str]) -> None:
    """Non-finite, huge, negative, sub-cent and out-of-range numbers (and absurd dates) in any argument or
    option: one line, exit 2, before anything is contacted."""
    result = cx(*args)
    assert result.returncode == ExitCode.USAGE, (args, result.returncode, result.stderr)
    line = result.stderr.strip()
    assert line.count("\n") == 0, line
    assert "Traceback" not in line, line
    assert "unexpected" not in line, line
