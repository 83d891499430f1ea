"""Shared fixtures: a fresh database per test on the chosen backend, test schools."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings
from directory.db import Database
from tests.support import properties
from tests.support.databases import PostgresDatabases, SqliteDatabases
from tests.support.schools import make_settings

# The hypothesis profile: a quarter of the examples by default, all of them with
# HYPOTHESIS_PROFILE=thorough (tests/support/properties.py).
properties.load()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database-url", default=os.environ.get("SCHULHOF_TEST_DATABASE_URL", ""),
                     help="PostgreSQL admin URL to run the suite on PostgreSQL")


def pytest_report_header(config: pytest.Config) -> str:
    url = config.getoption("--database-url")
    return f"schulhof database backend: {'postgresql' if url else 'sqlite'}"


@pytest.fixture(scope="session")
def databases(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    url = request.config.getoption("--database-url")
    factory = (PostgresDatabases(url) if url
               else SqliteDatabases(tmp_path_factory.mktemp("db-template")))
    yield factory
    factory.close()


@pytest.fixture
def database_url(databases: SqliteDatabases | PostgresDatabases,
                 tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database for this test."""
    url = databases.fresh(tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture
def fresh_database_url(databases: SqliteDatabases | PostgresDatabases,
                       tmp_path: Path) -> Iterator[object]:
    """A factory for more fresh databases (several schools in one test)."""
    urls: list[str] = []

    def make() -> str:
        urls.append(databases.fresh(tmp_path))
        return urls[-1]

    yield make
    for url in urls:
        databases.drop(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "school", database_url)


@pytest.fixture
async def school(settings: Settings) -> AsyncIterator[School]:
    """A school with its objects built but no network services started."""
    the_school = await School.open(settings, migrate=False)
    yield the_school
    await the_school.close()


@pytest.fixture
async def running_school(settings: Settings) -> AsyncIterator[School]:
    """A school with every network service listening on loopback (ports in settings)."""
    the_school = await School.open(settings, migrate=False)
    await the_school.start()
    yield the_school
    await the_school.close()
