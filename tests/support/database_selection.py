"""Which tests the PostgreSQL run repeats: those whose fixtures make a test database.

The SQLite run runs every test.  The PostgreSQL run (SCHULHOF_TEST_DATABASE_URL
or --database-url) would run the parsers, property tests and other pure logic
exactly as the SQLite run did, so it keeps only the tests that can see the
backend: those with the session fixture ``databases`` in their fixture closure
(``database_url``, ``fresh_database_url``, ``db``, ``settings``, ``school``,
``running_school`` and every server fixture built on them depend on it), and
those marked ``database``.  The URL reaches tests only through ``databases``:
``serve`` subprocesses get their database from the settings made on
``database_url`` (the runner's SCHULHOF_* variables are stripped), and no test
reads the variable itself (tests/test_database_selection.py checks that).

So that a test cannot use a test database behind its fixtures' back (e.g.
``request.getfixturevalue("database_url")``) and be dropped silently, every
``fresh()`` database is checked against the selection while the test runs, on
both backends: such a test fails on SQLite with the advice to mark it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import pytest

#: The fixtures that create test databases; every database, school and server
#: fixture depends on one of them.
DATABASE_FIXTURES = frozenset({"databases"})
MARKER = "database"
MARKER_HELP = (f"{MARKER}: uses a test database its fixture closure does not show "
               "(kept in the PostgreSQL run)")


def uses_database(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return (bool(DATABASE_FIXTURES.intersection(names))
            or item.get_closest_marker(MARKER) is not None)


def split(items: Sequence[pytest.Item]) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept, deselected) for the PostgreSQL run."""
    kept = [item for item in items if uses_database(item)]
    dropped = [item for item in items if not uses_database(item)]
    return kept, dropped


def summary(kept: int, dropped: Iterable[str]) -> str:
    """The header line: how many the PostgreSQL run deselects, by top folder."""
    dropped = list(dropped)
    by_folder = Counter("/".join(nodeid.split("::")[0].split("/")[:2]) for nodeid in dropped)
    folders = ", ".join(f"{folder} {n}" for folder, n in sorted(by_folder.items()))
    return (f"schulhof postgresql run: {kept} tests use a database and run; "
            f"{len(dropped)} use none and are deselected (they ran on SQLite)"
            + (f": {folders}" if folders else ""))


class _Factory(Protocol):
    def fresh(self, directory: Path) -> str: ...
    def drop(self, url: str) -> None: ...
    def close(self) -> None: ...


class Guard:
    """The running test, so that a database made for a test outside the selection fails it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: pytest.Item | None = None

    def running(self, item: pytest.Item | None) -> None:
        with self._lock:
            self._item = item

    def check(self) -> None:
        with self._lock:
            item = self._item
        if item is not None and not uses_database(item):
            raise AssertionError(
                f"{item.nodeid} makes a test database but has no fixture from "
                f"{sorted(DATABASE_FIXTURES)} in its fixture closure, so the PostgreSQL run "
                f"would deselect it: request one as an argument or mark it "
                f"@pytest.mark.{MARKER} (tests/support/database_selection.py)")


GUARD = Guard()


class GuardedDatabases:
    """The ``databases`` factory, checking each ``fresh()`` against the selection."""

    def __init__(self, factory: _Factory) -> None:
        self.factory = factory

    def fresh(self, directory: Path) -> str:
        GUARD.check()
        return self.factory.fresh(directory)

    def drop(self, url: str) -> None:
        self.factory.drop(url)

    def close(self) -> None:
        self.factory.close()
