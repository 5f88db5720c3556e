"""Shared fixtures: a real Postgres (DATABASE_URL or an embedded one) and real Temporal servers.

- `pg_admin_dsn`: the server (session-wide). DATABASE_URL if set, else an embedded Postgres in a
  temporary directory, stopped at the end of the session.
- `database_url`: a fresh database on that server with every migration applied (session-wide),
  dropped at the end. Tests isolate themselves by using their own business ids.
- `make_database`: a factory for a further fresh, migrated database when a test needs an empty one.
- `pg_pool`: an asyncpg pool on `database_url`.
- `time_skipping_env`: a time-skipping test server per test (its clock only moves forward, so each
  test gets its own, starting at the real now); `dev_server_env`: one dev server for the session. Both
  encrypt every payload with TEST_PAYLOAD_KEYS, which `cx` subprocesses get as CX_PAYLOAD_KEYS.

Every test has a time limit (pytest-timeout: `timeout` in pyproject.toml, or a test's own
`@pytest.mark.timeout`), and tests/time_limits.py cancels a hung async test in its loop just before it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from ledger import persons
from ledger.migrate import apply_migrations
from ledger.persons import PersonKeyring
from schemas.search import SEARCH_ATTRIBUTES, register_search_attributes
from tests.payload_keys import TEST_DATA_CONVERTER, TEST_PAYLOAD_KEYS
from workers.devstack import (
    TEMPORAL_CLI,
    TEMPORAL_TEST_SERVER,
    admin_dsn_or_embedded,
    create_database,
    drop_database,
    free_port,
)

pytest_plugins = ["pytester", "tests.time_limits", "tests.fuzz_options"]

# The whole suite runs encrypted (issue 16, item 1): the session's servers get the converter with this key, and
# every `cx` subprocess a test starts inherits it through the environment, as a deployment configures it.
os.environ["CX_PAYLOAD_KEYS"] = TEST_PAYLOAD_KEYS.to_config()
os.environ["CX_PAYLOAD_KEY_ID"] = TEST_PAYLOAD_KEYS.current
# Personal text sealed under keys derived from the same key (ledger/persons.py), as every process of a deployment.
persons.install(PersonKeyring.derive(TEST_PAYLOAD_KEYS.keys, TEST_PAYLOAD_KEYS.current))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    with admin_dsn_or_embedded(os.environ.get("DATABASE_URL"), "cx-test-pg-") as dsn:
        yield dsn


@pytest_asyncio.fixture(scope="session")
async def make_database(pg_admin_dsn: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    created: list[str] = []

    async def make() -> str:
        dsn = await create_database(pg_admin_dsn)
        created.append(dsn)
        await apply_migrations(dsn)
        return dsn

    yield make
    for dsn in created:
        await drop_database(pg_admin_dsn, dsn)


@pytest_asyncio.fixture(scope="session")
async def database_url(make_database: Callable[[], Awaitable[str]]) -> str:
    return await make_database()


@pytest_asyncio.fixture(scope="session")
async def pg_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=20)
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_DATA_CONVERTER,
        test_server_existing_path=str(TEMPORAL_TEST_SERVER),
        port=free_port(),
    )
    await register_search_attributes(env.client, "default")
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_DATA_CONVERTER,
        dev_server_existing_path=str(TEMPORAL_CLI),
        port=free_port(),
        ui=False,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()
