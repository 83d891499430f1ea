"""The PostgreSQL run keeps every test that can see the backend (support/database_selection.py).

The run deselects the tests with no database fixture in their closure.  That is
only safe while the test database reaches tests through the ``databases``
fixture alone: these tests check the two ways round it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.database_selection import uses_database

TESTS = Path(__file__).resolve().parent
# Where the test database URL may be read: the option and the factories.
READERS = {TESTS / "conftest.py", TESTS / "support" / "databases.py", Path(__file__).resolve()}
URL_SOURCE = re.compile(
    r"""(environ(\.get)?\s*[\[(]|getenv\()\s*["']SCHULHOF_TEST_DATABASE_URL"""
    r"""|getoption\(\s*["'](--)?database[-_]url|option\.database_url""")


def test_no_test_reads_the_database_url_itself() -> None:
    # A test that built its URL from the variable (or the option) would use
    # PostgreSQL without a database fixture, and the PostgreSQL run would drop it.
    readers = sorted(str(path.relative_to(TESTS)) for path in TESTS.rglob("*.py")
                     if path not in READERS and "bench" not in path.parts
                     and URL_SOURCE.search(path.read_text(encoding="utf-8")))
    assert readers == [], ("these read the test database URL themselves; take it from "
                           "the database_url fixture instead: " + ", ".join(readers))


def test_a_database_behind_the_fixtures_back_fails_the_test(request: pytest.FixtureRequest
                                                            ) -> None:
    assert not uses_database(request.node)
    with pytest.raises(AssertionError, match="PostgreSQL run would deselect it"):
        request.getfixturevalue("database_url")


@pytest.mark.database
def test_the_marker_keeps_a_test(request: pytest.FixtureRequest) -> None:
    assert uses_database(request.node)
    url = request.getfixturevalue("database_url")
    assert url.startswith(("sqlite", "postgresql"))


def test_database_fixtures_keep_a_test(request: pytest.FixtureRequest, db: object) -> None:
    assert uses_database(request.node)
