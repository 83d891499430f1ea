"""Schema migrations (Alembic), run by ``schulhof migrate``, ``init`` and ``serve``.

``0001`` creates the directory; every other package (mailserver, messenger,
federation) has its own branch starting at ``0001``, labelled with the
package's name, and ``upgrade`` goes to all heads.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

from directory.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


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
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(db: Database, revision: str = "heads") -> None:
    def run(connection: object) -> None:
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
