"""What a person hands to `cx` (a file, a JSON payload), read so that no input ends in a traceback.

Every command that reads a file or JSON text goes through here (`cx submit`, `cx import`, `cx decide` and
`cx signal` with `--file` or `--data`, `cx policy simulate`), and each refusal is an `InputRefused` whose
text is the one line to print: the file (or `--data`), where (byte offset, line, column) and the rule
(issue 11, item 7). The rules:

- a regular file (or a pipe), not a directory or a device; at most `MAX_INPUT_BYTES`, checked before
  reading and again while reading (a file may grow); not empty;
- UTF-8, with or without a byte-order mark (Excel writes one in "CSV UTF-8"); another encoding is named
  by the first byte that is not UTF-8 (Latin-1 `é` is 0xE9) and the line it is on; UTF-16 is named as such;
- no NUL character (a binary file, or a file saved as UTF-16 without its mark);
- JSON: standard JSON only (no `NaN` / `Infinity`, numbers finite), no key twice in one object, at most
  `MAX_JSON_DEPTH` levels of nesting (deeper input used to end in a RecursionError).
"""

from __future__ import annotations

import codecs
import json
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
# An import of 10,000 applications (clients/import_commands.py MAX_ROWS) is about 10 MiB of JSON; any
# other input (one application, one payload, one policy) is far smaller.
MAX_INPUT_BYTES = 10 * MIB
# An application nests three levels; a policy file five. Far deeper input is an attack or a mistake, and
# Python's parser would otherwise run out of stack at a few thousand levels.
MAX_JSON_DEPTH = 32
_UTF16_MARKS = ((codecs.BOM_UTF16_LE, "UTF-16 little-endian"), (codecs.BOM_UTF16_BE, "UTF-16 big-endian"))


class InputRefused(ValueError):
    """A file or payload that cannot be read as the command needs; `str()` is the one line to show."""


def shown_path(path: Path) -> str:
    """The path as typed, or escaped when it holds characters that would break the one-line error
    (a newline, an escape sequence, bytes that are not UTF-8 in the name)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def read_text(path: Path, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The text of `path` by the rules above, or `InputRefused` naming the file and what is wrong."""
    shown = shown_path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputRefused(f"{shown}: no such file") from None
    except OSError as error:
        raise InputRefused(f"{shown}: cannot be read ({error.strerror or type(error).__name__})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputRefused(f"{shown}: is a directory, not a file")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise InputRefused(f"{shown}: is not a regular file (a device or a socket)")
    if info.st_size > max_bytes:
        raise InputRefused(f"{shown}: {info.st_size:,} bytes, over the {_size(max_bytes)} limit; split it")
    try:
        with path.open("rb") as handle:
            # One byte over the limit is enough to refuse a file that grew since stat() (or a pipe).
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputRefused(f"{shown}: cannot be read ({error.strerror or type(error).__name__})") from None
    if len(data) > max_bytes:
        raise InputRefused(f"{shown}: over the {_size(max_bytes)} limit; split it")
    if not data:
        raise InputRefused(f"{shown}: is empty (0 bytes)")
    return decode_text(data, shown)


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or `InputRefused` naming the first offending byte."""
    for mark, encoding in _UTF16_MARKS:
        if data.startswith(mark):
            raise InputRefused(f"{source}: is {encoding} (byte-order mark at the start); save it as UTF-8")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
        line, column = _line_and_column_of_byte(data, offset)
        raise InputRefused(
            f"{source}: not UTF-8: byte 0x{data[offset]:02X} at offset {offset} (line {line}, column {column}); "
            "save it as UTF-8"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line, column = line_and_column(text, nul)
        raise InputRefused(f"{source}: a NUL character at line {line}, column {column}; is it a binary file?")
    return text


def line_and_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `text[index]`."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _line_and_column_of_byte(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def parse_json(text: str, source: str) -> Any:
    """One JSON document by the rules above, or `InputRefused` naming `source`, the line and the column."""
    value, end = _decode_one(text, _skip_space(text, 0), source)
    end = _skip_space(text, end)
    if end < len(text):
        line, column = line_and_column(text, end)
        raise InputRefused(f"{source}: not valid JSON (extra data after the document at line {line}, column {column})")
    return value


@dataclass(frozen=True)
class JsonItem:
    """One item of a top-level JSON array: its value and where it is (`text[start:end]`, from `line`)."""

    value: Any
    line: int
    start: int
    end: int


def json_array_items(text: str, source: str) -> Iterator[JsonItem]:
    """The items of a top-level JSON array, each with its place (for an import's report)."""
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        line, column = line_and_column(text, index)
        found = "an object" if text.startswith("{", index) else "something else"
        raise InputRefused(
            f"{source}: a JSON import is a list of applications ([...]), found {found} at line {line}, column {column}"
        )
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        return
    while True:
        line, _ = line_and_column(text, index)
        value, end = _decode_one(text, index, source, depth=1)
        yield JsonItem(value, line, index, end)
        index = end
        index = _skip_space(text, index)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
        elif text.startswith("]", index):
            break
        else:
            line, column = line_and_column(text, index)
            raise InputRefused(f"{source}: not valid JSON (expected ',' or ']' at line {line}, column {column})")
    index = _skip_space(text, index + 1)
    if index < len(text):
        line, column = line_and_column(text, index)
        raise InputRefused(f"{source}: not valid JSON (extra data after the list at line {line}, column {column})")


def locate(text: str, field: str) -> tuple[int, int] | None:
    """Line and column in JSON `text` of the dotted `field` (`visitor.country`, `scores.0`) as a validation
    error names it; for a field that is missing, of the deepest part of its path that is there (its object).

    A plain scan of the tokens, without recursion: `text` has passed `parse_json` already.
    """
    wanted = tuple(field.split("."))
    best: int | None = None
    best_length = 0
    kinds: list[str] = []  # the open containers, "{" or "["
    keys: list[str] = []  # per open container: the current key, or the current index as text
    expect_key = False
    for token in _TOKENS.finditer(text):
        value, position = token.group(), token.start()
        if value == ":":
            continue
        if value == ",":
            if kinds[-1] == "[":
                keys[-1] = str(int(keys[-1]) + 1)
            else:
                expect_key = True
            continue
        if value in ("}", "]"):
            kinds.pop()
            keys.pop()
            expect_key = False
            continue
        # A key names its member's place; in a list, the item's first token does.
        is_key = expect_key
        if is_key:
            keys[-1] = json.loads(value)
            expect_key = False
        if is_key or (kinds and kinds[-1] == "["):
            path = tuple(keys)
            if len(path) <= len(wanted) and path == wanted[: len(path)] and len(path) > best_length:
                best, best_length = position, len(path)
                if path == wanted:
                    break
            if is_key:
                continue
        if value in ("{", "["):
            kinds.append(value)
            keys.append("0" if value == "[" else "")
            expect_key = value == "{"
    return line_and_column(text, best) if best is not None else None


def with_lines(text: str, errors: Sequence[tuple[str, str]], first_line: int = 1) -> list[str]:
    """`field (line N): rule` for each (field, rule) of a refusal, the line found in JSON `text` (which
    starts at `first_line` of its file); a field with no place in the text is named without a line."""
    described = []
    for field, rule in errors:
        place = locate(text, field)
        described.append(f"{field} (line {place[0] + first_line - 1}): {rule}" if place else f"{field}: {rule}")
    return described


# JSON's tokens: a string, a punctuation mark, or any other scalar (number, true, false, null).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')
_WHITESPACE = " \t\n\r"


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


class _NotJson(ValueError):
    """A value JSON does not have (NaN, Infinity, a number too large for a float) or a key twice."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise _NotJson(f"the number {shown} is too large")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _NotJson(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys, strict=True
)


def _decode_one(text: str, index: int, source: str, depth: int = 0) -> tuple[Any, int]:
    try:
        value, end = _DECODER.raw_decode(text, index)
    except json.JSONDecodeError as error:
        # "Invalid control character at" is the one message of the stdlib that names the place itself.
        rule = error.msg.removesuffix(" at")
        raise InputRefused(f"{source}: not valid JSON ({rule} at line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        line, column = line_and_column(text, index)
        raise InputRefused(
            f"{source}: not valid JSON (the value at line {line}, column {column} is nested too deeply; "
            f"at most {MAX_JSON_DEPTH} levels)"
        ) from None
    except ValueError as error:
        # _NotJson, or Python's own limit on integer digits (4,300): the value, not the syntax, is wrong.
        rule = str(error) if isinstance(error, _NotJson) else "an integer with more than 4,300 digits"
        line, column = line_and_column(text, index)
        raise InputRefused(f"{source}: not valid JSON ({rule}, in the value at line {line}, column {column})") from None
    try:
        too_deep = _depth(value) + depth > MAX_JSON_DEPTH
    except _NotJson as error:
        line, column = line_and_column(text, index)
        where = f"in the value at line {line}, column {column}"
        raise InputRefused(f"{source}: not valid JSON ({error}, {where})") from None
    if too_deep:
        line, column = line_and_column(text, index)
        raise InputRefused(
            f"{source}: the value at line {line}, column {column} is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    return value, end


def _depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests, counted without recursion; a string holding a
    lone surrogate (`"\\ud800"`, valid JSON escapes, but no text at all) is refused on the way."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            _refuse_surrogates(item)
            continue
        if isinstance(item, dict):
            for key in item:
                _refuse_surrogates(key)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break  # deep enough to refuse; no need to walk the rest
        stack.extend((child, level + 1) for child in children)
    return deepest


_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_surrogates(text: str) -> None:
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise _NotJson(f"a lone surrogate \\u{ord(found.group()):04x} in a string, which is no character")


def _size(size_bytes: int) -> str:
    return f"{size_bytes // MIB} MiB" if size_bytes % MIB == 0 else f"{size_bytes:,} bytes"
