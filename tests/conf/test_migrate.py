"""``conf.migrate``: the schema is upgraded through Alembic unless the database already
records exactly the scripts' heads (read without Alembic: a command stays small)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from conf.migrate import alembic_config, applied_heads, is_current, script_heads, upgrade
from directory.db import Database


def test_script_heads_are_alembics_heads() -> None:
    alembic = frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert script_heads() == alembic
    assert len(alembic) > 1  # one branch per package


def test_script_heads_of_a_merge_and_annotated_ids(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (tmp_path / "b.py").write_text("revision: str = 'b'\ndown_revision = 'a'\n")
    (tmp_path / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')
    assert script_heads(tmp_path) == {"b", "c"}
    (tmp_path / "d.py").write_text("revision = 'd'\ndown_revision = ('b', 'c')\n")
    assert script_heads(tmp_path) == {"d"}
    # An id Alembic would compute some other way: no fast path (Alembic decides).
    (tmp_path / "e.py").write_text("revision = make_id()\ndown_revision = 'd'\n")
    assert script_heads(tmp_path) == frozenset()


async def test_new_old_and_current_databases(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'school.db'}")
    try:
        assert await applied_heads(db) == frozenset()  # no alembic_version table yet
        assert not await is_current(db)
        await upgrade(db, "0001")
        assert await applied_heads(db) == {"0001"}
        assert not await is_current(db)
        await upgrade(db)  # an old database is upgraded by Alembic
        assert await applied_heads(db) == script_heads()
        assert await is_current(db)
    finally:
        await db.dispose()


async def test_current_database_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'school.db'}"
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    script = ("import asyncio, sys\n"
              "from conf.migrate import upgrade\n"
              "from directory.db import Database\n"
              "async def main():\n"
              f"    db = Database({url!r})\n"
              "    await upgrade(db)\n"
              "    await db.dispose()\n"
              "asyncio.run(main())\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('alembic', 'mako', 'aiohttp', 'messenger', 'mailserver')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2]).stdout
    assert out.strip() == "[]"
