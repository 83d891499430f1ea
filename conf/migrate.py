"""Schema migrations (Alembic), run by ``schulhof migrate``, ``init`` and ``serve``.

``0001`` creates the directory; every other package (mailserver, messenger,
federation) has its own branch starting at ``0001``, labelled with the
package's name, and ``upgrade`` goes to all heads.

Every command opens the school through ``upgrade``; when the database already
records exactly the scripts' heads (the usual case) nothing of Alembic is
imported: the heads are read from the scripts' ``revision``/``down_revision``
lines.  Alembic with its templates and every table model costs a command such
as ``schulhof export`` about 10 MiB (issue 17).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, text
from sqlalchemy.exc import SQLAlchemyError

from directory.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def script_heads(versions: Path = MIGRATIONS / "versions") -> frozenset[str]:
    """The head revisions of the migration scripts (those no script revises), read
    without Alembic; empty when a script's ids are not plain literals."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return frozenset()
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return frozenset()
        revisions.add(revision)
        if isinstance(down, str):
            revised.add(down)
        elif isinstance(down, tuple | list):
            revised.update(str(d) for d in down)
    return frozenset(revisions - revised)


async def applied_heads(db: Database) -> frozenset[str]:
    """The revisions the database records as applied (empty for a new database)."""
    try:
        async with db.read() as session:
            rows = (await session.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalars().all()
    except SQLAlchemyError:
        return frozenset()
    return frozenset(rows)


async def is_current(db: Database) -> bool:
    heads = script_heads()
    return bool(heads) and await applied_heads(db) == heads


def all_metadata() -> MetaData:
    """The metadata of every package's tables (imported here, in the composition root)."""
    import directory.schema

    for module in ("directory.audit", "mailserver.schema", "mailserver.outbound.sts_store",
                   "messenger.schema", "federation.schema"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return directory.schema.Base.metadata


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(db: Database, revision: str = "heads") -> None:
    if revision == "heads" and await is_current(db):
        return

    def run(connection: object) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.write_engine.begin() as conn:
        await conn.run_sync(run)


async def make_revision(db: Database, message: str, rev_id: str, head: str,
                        branch_label: str | None = None) -> None:
    """Developer tool: autogenerate a migration from the models against ``db``.

    Each package keeps its own branch of the history (``head`` is the
    revision or branch label it follows, e.g. ``mailserver@head`` or ``0001``),
    so packages can add tables without waiting for each other.
    ``python -m conf.migrate "mail store" mail_0001 0001 mailserver`` against a
    scratch SQLite file; read and tidy the generated file before committing.
    """

    def run(connection: object) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
        # splice: a new branch may start from a revision that is no longer a head.
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id,
                         head=head, branch_label=branch_label, splice=True)

    async with db.write_engine.begin() as conn:
        await conn.run_sync(run)


if __name__ == "__main__":
    import asyncio
    import sys
    import tempfile

    async def _main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/scratch.db")
            await make_revision(db, *sys.argv[1:4], *sys.argv[4:5])
            await db.dispose()

    asyncio.run(_main())
