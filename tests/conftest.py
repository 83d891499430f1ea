"""Shared fixtures: a fresh database per test on the chosen backend, test schools."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings
from directory.db import Database
from tests.support import database_selection, properties
from tests.support.database_selection import GuardedDatabases
from tests.support.databases import PostgresDatabases, SqliteDatabases
from tests.support.schools import make_settings

# The hypothesis profile: a quarter of the examples by default, all of them with
# HYPOTHESIS_PROFILE=thorough (tests/support/properties.py).
properties.load()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database-url", default=os.environ.get("SCHULHOF_TEST_DATABASE_URL", ""),
                     help="PostgreSQL admin URL to run the suite on PostgreSQL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", database_selection.MARKER_HELP)


def pytest_report_header(config: pytest.Config) -> str:
    url = config.getoption("--database-url")
    return f"schulhof database backend: {'postgresql' if url else 'sqlite'}"


# --- the PostgreSQL run: only the tests that use a database (tests/support/database_selection.py)

_SELECTION_FILE = "schulhof_selection_file"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-url"):
        return
    kept, dropped = database_selection.split(items)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    line = database_selection.summary(len(kept), (item.nodeid for item in dropped))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.stash[_SUMMARY] = line
    elif workerinput.get("workerid") == "gw0" and _SELECTION_FILE in workerinput:
        Path(workerinput[_SELECTION_FILE]).write_text(line, encoding="utf-8")


_SUMMARY = pytest.StashKey[str]()


def pytest_report_collectionfinish(config: pytest.Config) -> str:
    return config.stash.get(_SUMMARY, "")  # without xdist


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist: the first worker writes the selection line to a file the controller prints."""
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    workerinput = node.workerinput  # type: ignore[attr-defined]
    if config.getoption("--database-url") and workerinput.get("workerid") == "gw0":
        workerinput[_SELECTION_FILE] = str(Path(tempfile.mkdtemp(prefix="schulhof-selection-"))
                                           / "line.txt")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    path = node.workerinput.get(_SELECTION_FILE)  # type: ignore[attr-defined]
    if path:
        file = Path(path)
        text = (file.read_text(encoding="utf-8") if file.exists()
                else "schulhof postgresql run: the selection line is missing")
        shutil.rmtree(file.parent, ignore_errors=True)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(text)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadgroup``: one worker per server-sharing group (tests/support/xdist_groups.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.support.xdist_groups import ModuleGroupScheduling
    return ModuleGroupScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> object:
    database_selection.GUARD.running(item)
    try:
        return (yield)
    finally:
        database_selection.GUARD.running(None)


@pytest.fixture(scope="session")
def databases(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    url = request.config.getoption("--database-url")
    factory = GuardedDatabases(PostgresDatabases(url) if url
                               else SqliteDatabases(tmp_path_factory.mktemp("db-template")))
    yield factory
    factory.close()


@pytest.fixture
def database_url(databases: GuardedDatabases,
                 tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database for this test."""
    url = databases.fresh(tmp_path)
    yield url
    databases.drop(url)


@pytest.fixture(scope="module")
def module_database_url(databases: GuardedDatabases,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated, empty database for the tests of one module (a shared server)."""
    url = databases.fresh(tmp_path_factory.mktemp("module-db"))
    yield url
    databases.drop(url)


@pytest.fixture
def fresh_database_url(databases: GuardedDatabases,
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
