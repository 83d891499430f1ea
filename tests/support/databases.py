"""Fresh databases for tests: one per test, on SQLite (default) or PostgreSQL.

PostgreSQL is used when SCHULHOF_TEST_DATABASE_URL is set (or --database-url),
e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``.  The schema is
migrated once into a template (a file for SQLite, a template database for
PostgreSQL); each test gets a copy, so tests never see each other's rows and
two test runs never share a database.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import threading
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from conf.migrate import upgrade
from directory.db import Database


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


class SqliteDatabases:
    def __init__(self, work_dir: Path) -> None:
        self.template = work_dir / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{self.template}"))

    def fresh(self, directory: Path) -> str:
        path = directory / f"school-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"

    def drop(self, url: str) -> None:
        pass  # lives in the test's tmp_path

    def close(self) -> None:
        pass


class PostgresDatabases:
    """Copies of a migrated template; dropped in the background.

    ``DROP DATABASE`` waits for a checkpoint (1-4 s on the loaded CI machine), so
    a dropper thread does it while the next test runs; at most ``PENDING_DROPS``
    wait (then ``drop`` waits, so the disk does not fill up); ``close`` waits for
    the thread and drops whatever is left.
    """

    PENDING_DROPS = 4

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.prefix = f"schulhof_{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self._admin(f'CREATE DATABASE "{self.template}"')
        asyncio.run(_migrate(self._url(self.template)))
        self.created: list[str] = []
        self._to_drop: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._pending = threading.BoundedSemaphore(self.PENDING_DROPS)
        self._dropper = threading.Thread(target=self._drop_queued, name="drop-test-databases",
                                         daemon=True)
        self._dropper.start()

    def _url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _admin(self, *statements: str) -> None:
        import asyncpg

        async def run() -> None:
            u = self.admin_url
            conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username,
                                         password=u.password, database=u.database)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def fresh(self, directory: Path) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self._url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        assert name is not None
        self._pending.acquire()
        self._to_drop.put(name)

    def _drop_queued(self) -> None:
        while (name := self._to_drop.get()) is not None:
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # close() drops what is left
                continue
            else:
                if name in self.created:
                    self.created.remove(name)
            finally:
                self._pending.release()

    def close(self) -> None:
        self._to_drop.put(None)
        self._dropper.join()
        self._admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'
                      for n in [*self.created, self.template]))
