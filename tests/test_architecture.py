"""Imports go one way, and the environment is read in one place (issue 13, item 3; docs/adr/0014-one-way-imports.md).

The graph of ../shared/ARCHITECTURE.md, with rules/ between schemas and ledger:

    schemas <- rules <- ledger <- activities <- workflows <- workers
    clients: schemas, rules, ledger (its public functions) and themselves; workers may compose clients.

Every module of the seven packages is parsed with `ast`, and every import of one of them is an edge, a
function-level import as much as one at the top: an import that the graph does not allow fails the test,
named by file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What each package may import of ours (itself included). Workflows reach activities only for their
# definitions (passed through the sandbox), never the ledger; nothing but workers imports workers.
ALLOWED: dict[str, frozenset[str]] = {
    "schemas": frozenset({"schemas"}),
    "rules": frozenset({"schemas", "rules"}),
    "ledger": frozenset({"schemas", "rules", "ledger"}),
    "activities": frozenset({"schemas", "rules", "ledger", "activities"}),
    "workflows": frozenset({"schemas", "rules", "activities", "workflows"}),
    "workers": frozenset({"schemas", "rules", "ledger", "activities", "workflows", "workers", "clients"}),
    "clients": frozenset({"schemas", "rules", "ledger", "clients"}),
}
PACKAGES = tuple(ALLOWED)
# The one module that reads the process environment into Settings (workers/process.py, once per run).
SETTINGS_READER = Path("workers/process.py")


@dataclass(frozen=True)
class Edge:
    module: Path
    line: int
    imported: str

    @property
    def source(self) -> str:
        return self.module.parts[0]

    @property
    def target(self) -> str:
        return self.imported.split(".")[0]

    def __str__(self) -> str:
        return f"{self.module}:{self.line} ({self.source}) imports {self.imported} ({self.target})"


def modules(root: Path = ROOT) -> list[Path]:
    """Every Python module of the seven packages, relative to `root`."""
    return sorted(path.relative_to(root) for package in PACKAGES for path in (root / package).rglob("*.py"))


def _resolved(module: Path, node: ast.ImportFrom) -> str:
    """The absolute module an import names (`from .x import y` inside clients/api/ is clients.api.x)."""
    if node.level == 0:
        return node.module or ""
    package = list(module.with_suffix("").parts)
    base = package[: len(package) - node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def edges(module: Path, root: Path = ROOT) -> list[Edge]:
    """The imports of our packages in one module, wherever they are written (top level or in a function)."""
    tree = ast.parse((root / module).read_text(), filename=str(module))
    found: list[Edge] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [_resolved(module, node)]
        else:
            continue
        found += [Edge(module, node.lineno, name) for name in names if name.split(".")[0] in PACKAGES]
    return found


def against_the_direction(root: Path = ROOT) -> list[Edge]:
    return [edge for module in modules(root) for edge in edges(module, root) if edge.target not in ALLOWED[edge.source]]


def test_every_import_goes_the_way_of_the_graph() -> None:
    """No module imports a package that its own package may not depend on (0 edges against the direction)."""
    wrong = against_the_direction()
    assert wrong == [], f"{len(wrong)} import(s) against the direction:\n" + "\n".join(map(str, wrong))


def test_the_scan_sees_every_package_and_function_level_imports() -> None:
    """The scan is not vacuous: it finds modules in each package, and an import inside a function body."""
    found = modules()
    assert {path.parts[0] for path in found} == set(PACKAGES)
    inside = [e for e in edges(Path("workers/commands.py")) if e.imported == "workers.main"]
    assert inside, "workers/commands.py imports workers.main inside `worker`: the scan must see it"


def _settings_reads(module: Path) -> list[int]:
    """Lines that build Settings from the process environment: `Settings()` or `Settings.from_env()` with no
    argument. (`Settings.from_env(mapping)` parses the mapping it is given and reads nothing else.)"""
    tree = ast.parse((ROOT / module).read_text(), filename=str(module))
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or node.args or node.keywords:
            continue
        called = node.func
        constructed = isinstance(called, ast.Name) and called.id == "Settings"
        from_env = (
            isinstance(called, ast.Attribute)
            and called.attr == "from_env"
            and isinstance(called.value, ast.Name)
            and called.value.id == "Settings"
        )
        if constructed or from_env:
            lines.append(node.lineno)
    return lines


def _environment_reads(module: Path) -> list[int]:
    """Lines that touch the process environment directly: `os.environ`, `os.getenv`, `from os import environ`."""
    tree = ast.parse((ROOT / module).read_text(), filename=str(module))
    names = {"environ", "environb", "getenv", "putenv"}
    attribute = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in names
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]
    imported = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & names
    ]
    return attribute + imported


def test_settings_are_read_from_the_environment_in_one_place() -> None:
    """Only workers/process.py builds Settings from the environment (once per run, on first use), and no module
    of the seven packages reads a variable itself: pydantic-settings, inside Settings, is the one reader."""
    reads = {module: lines for module in modules() if (lines := _settings_reads(module))}
    assert list(reads) == [SETTINGS_READER], f"Settings read from the environment at {reads}"
    assert len(reads[SETTINGS_READER]) == 1, f"{SETTINGS_READER} reads Settings more than once: {reads}"
    direct = {module: lines for module in modules() if (lines := _environment_reads(module))}
    assert direct == {}, f"the environment read outside Settings at {direct}"


# Functions that fit on a screen (issue 13, item 5): a function is read whole, signature included.
MAX_FUNCTION_LINES = 70
# Not our code, or not code: virtual environments, caches, the state `make run` keeps, and the tests, whose
# tables of cases may run long.
_NOT_SCANNED = frozenset({"tests", "build", "dist", "node_modules"})


def every_module(root: Path = ROOT) -> list[Path]:
    """Every Python file of the repository outside tests/ and hidden directories (.venv, .cx, caches), bench/ too."""
    return sorted(
        relative
        for path in root.rglob("*.py")
        if (relative := path.relative_to(root)).parts[0] not in _NOT_SCANNED
        and not any(part.startswith(".") or part.endswith(".egg-info") for part in relative.parts)
    )


def long_functions(module: Path, root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`file:function:lines` for each function (nested ones too) longer than `limit`, from `def` to its last line."""
    tree = ast.parse((root / module).read_text(), filename=str(module))
    return [
        f"{module}:{node.name}:{length}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > limit
    ]


def test_every_function_fits_on_a_screen() -> None:
    """No function outside tests/ is longer than MAX_FUNCTION_LINES lines, its signature included."""
    found = every_module()
    assert Path("bench/lifecycle.py") in found, "bench/ counts too: the scan must see it"
    long = [entry for module in found for entry in long_functions(module)]
    assert long == [], f"{len(long)} function(s) over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_length_scan_names_file_function_and_lines(tmp_path: Path) -> None:
    """The scan is not vacuous: it names a long function, nested or not, by file, name and length."""
    body = "\n".join(f"        x{i} = {i}" for i in range(70))
    (tmp_path / "long.py").write_text(f"async def outer():\n    def inner():\n{body}\n        return 0\n")
    assert long_functions(Path("long.py"), tmp_path) == ["long.py:outer:73", "long.py:inner:72"]
    assert long_functions(Path("long.py"), tmp_path, limit=72) == ["long.py:outer:73"]
    assert long_functions(Path("long.py"), tmp_path, limit=73) == []
