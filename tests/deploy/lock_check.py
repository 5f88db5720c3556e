"""Is requirements/runtime.lock current? Checked offline against pyproject.toml and the installed venv.

- every runtime dependency pinned in pyproject.toml (`name==version`) is in the lock at that version;
- the lock holds exactly the closure of those dependencies, as the installed distributions declare their own
  requirements (importlib.metadata, markers evaluated for this interpreter: Linux and Python 3.11 like the
  image), so nothing is locked that nothing needs, and nothing needed is missing;
- each locked version is the one installed here, so the tests ran against what the image ships;
- every entry carries at least one `--hash=sha256:...`, so `pip install --require-hashes` accepts the file.

`make lock` regenerates it; a finding names the package and what to do.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class LockEntry:
    version: str
    hashes: int


def parse_lock(text: str) -> dict[str, LockEntry]:
    """The lock's entries by canonical name: each `name==version \\` line and the hash lines that follow it."""
    entries: dict[str, LockEntry] = {}
    name = ""
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match:
            name = canonicalize_name(match["name"])
            entries[name] = LockEntry(match["version"], len(_HASH.findall(line)))
        elif name and line.startswith("    --hash="):
            entries[name] = LockEntry(entries[name].version, entries[name].hashes + len(_HASH.findall(line)))
        elif not line.startswith(" "):
            name = ""  # a comment or a blank line ends the entry
    return entries


def pinned_dependencies(pyproject: Path) -> dict[str, Requirement]:
    """pyproject.toml's runtime `dependencies` by canonical name (the dev extra is not shipped)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return {canonicalize_name(req.name): req for req in map(Requirement, project["dependencies"])}


def _environment(extra: str) -> dict[str, str]:
    """This interpreter's marker environment (Linux, CPython 3.11, like the image) with `extra` requested."""
    return {**{name: str(value) for name, value in default_environment().items()}, "extra": extra}


def closure(roots: dict[str, Requirement]) -> set[str]:
    """Every distribution the roots need, transitively, as the installed ones declare it for this platform."""
    needed: set[str] = set()
    todo = [(name, frozenset(req.extras)) for name, req in roots.items()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate(_environment(extra)) for extra in (extras or {""})):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def lock_problems(lock_text: str, pyproject: Path) -> list[str]:
    """Everything that makes the lock stale, one line each; empty when it is current."""
    entries = parse_lock(lock_text)
    pinned = pinned_dependencies(pyproject)
    problems: list[str] = []
    for name, req in sorted(pinned.items()):
        wanted = {spec.version for spec in req.specifier if spec.operator == "=="}
        if len(wanted) != 1:
            problems.append(f"{name}: pin it with == in pyproject.toml (the image installs exact versions)")
        elif name not in entries:
            problems.append(f"{name}: pinned in pyproject.toml but not in the lock: run `make lock`")
        elif entries[name].version not in wanted:
            problems.append(f"{name}: the lock has {entries[name].version}, pyproject.toml {wanted.pop()}: make lock")
    needed = closure(pinned)
    problems += [
        f"{name}: in the lock but nothing pinned needs it: run `make lock`" for name in sorted(set(entries) - needed)
    ]
    problems += [f"{name}: needed but not in the lock: run `make lock`" for name in sorted(needed - set(entries))]
    for name, entry in sorted(entries.items()):
        if entry.hashes == 0:
            problems.append(f"{name}: no --hash in the lock: run `make lock`")
        elif name in needed and metadata.version(name) != entry.version:
            problems.append(
                f"{name}: locked {entry.version}, installed {metadata.version(name)}: reinstall or make lock"
            )
    return problems
