"""How many ``serve`` processes: the default is one per core, one on SQLite (issue 15)."""

from __future__ import annotations

import os

from conf.settings import ServerSettings
from conf.workers import worker_count


def test_default_is_one_per_core_on_postgres_and_one_on_sqlite() -> None:
    default = ServerSettings().workers
    assert default == 0
    assert worker_count(default, sqlite=False) == (os.cpu_count() or 1)
    assert worker_count(default, sqlite=True) == 1


def test_asked_for_count_except_on_sqlite() -> None:
    assert worker_count(3, sqlite=False) == 3
    assert worker_count(1, sqlite=False) == 1
    assert worker_count(3, sqlite=True) == 1
