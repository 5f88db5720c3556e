"""`--fuzz-examples N`: how many cases per operation and generation mode the fuzz tests send (issue 16, item 4).

Unset, each fuzz test uses its CI budget (tests/api/test_fuzz.py, tests/workflows/test_fuzz_updates.py);
`make fuzz ARGS="--fuzz-examples 500"` runs the same tests longer. A plugin (tests/conftest.py names it), so
the option exists whichever tests a run selects.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help="generated cases per operation (REST) or per message (Temporal) and mode; default: the CI budget",
    )


@pytest.fixture(scope="session")
def fuzz_examples(request: pytest.FixtureRequest) -> int | None:
    value = request.config.getoption("--fuzz-examples")
    assert value is None or value > 0, "--fuzz-examples must be a positive number"
    return value if value is None else int(value)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A longer fuzz (`--fuzz-examples`) runs as long as it takes: its tests' CI time limit is lifted."""
    if config.getoption("--fuzz-examples") is None:
        return
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(pytest.mark.timeout(0), append=False)
