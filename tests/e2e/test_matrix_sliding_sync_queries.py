"""Statements per initial sliding sync (MSC4186): a new connection's first response
reads its rooms in a few statements over all of them, not some per room (N+1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from conf.app import School
from directory.db import Database
from directory.model import Role
from messenger.server import MatrixServer
from tests.e2e.test_matrix_sliding_sync import ELEMENT_X_STATE, PASSWORD, SS, V3, Client

TEACHERS = ("lehrer", "kollegin", "referendar")


@pytest.fixture
async def base(running_school: School) -> str:
    for login in TEACHERS:
        await running_school.directory.create_account(role=Role.TEACHER, login=login,
                                                      password=PASSWORD)
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    return server.base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def login(http: aiohttp.ClientSession, base: str, user: str) -> Client:
    return await Client(http, base).login(user)


def in_a_request() -> bool:
    """Whether the running task serves an HTTP request (the server's background
    tasks, which poll the database now and then, are not counted)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    coro = task.get_coro() if task is not None else None
    return getattr(coro, "__qualname__", "").startswith("RequestHandler.")


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """Every statement requests run meanwhile (SQLAlchemy's and the raw ones)."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if in_a_request():
            seen.append(statement)

    engines = {id(e): e for e in (db.read_engine, db.write_engine)}.values()
    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    originals = {name: getattr(Database, name) for name in (
        "read_rows", "read_rows_small", "rows_in")}

    async def read_rows(self: Database, sql: str, parameters: Any = ()) -> Any:
        if in_a_request():
            seen.append(sql)
        return await originals["read_rows"](self, sql, parameters)

    async def read_rows_small(self: Database, sql: str, parameters: Any = ()) -> Any:
        if self.reads_inline and in_a_request():  # otherwise read_rows counts it
            seen.append(sql)
        return await originals["read_rows_small"](self, sql, parameters)

    async def rows_in(session: Any, sql: str, parameters: Any = ()) -> Any:
        # On PostgreSQL, SQLAlchemy's event counts it.
        if session.bind.dialect.name == "sqlite" and in_a_request():
            seen.append(sql)
        return await originals["rows_in"](session, sql, parameters)

    Database.read_rows = read_rows  # type: ignore[method-assign]
    Database.read_rows_small = read_rows_small  # type: ignore[method-assign]
    Database.rows_in = staticmethod(rows_in)  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(Database, name, original)
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def patiently(client: Client, method: str, path: str, body: Any) -> Any:
    """The call, after waiting out the server's rate limits."""
    while True:
        status, data = await client.call(method, path, body)
        if status != 429:
            assert status == 200, (path, status, data)
            return data
        await asyncio.sleep(data.get("retry_after_ms", 100) / 1000)


def everything(rooms: int) -> dict[str, Any]:
    return {"lists": {"all": {"ranges": [[0, rooms - 1]], "timeline_limit": 1,
                              "required_state": ELEMENT_X_STATE}},
            "extensions": {name: {"enabled": True} for name in (
                "e2ee", "to_device", "account_data", "receipts", "typing")}}


async def rooms_with_a_message(me: Client, others: list[Client], first: int,
                               count: int) -> None:
    for n in range(first, first + count):
        room_id = (await patiently(me, "POST", f"{V3}/createRoom", {
            "name": f"Raum {n}", "invite": [o.user_id for o in others]}))["room_id"]
        for other in others:
            await patiently(other, "POST", f"{V3}/join/{room_id}", {})
        await patiently(me, "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/m{n}",
                        {"msgtype": "m.text", "body": f"m{n}"})


async def statements_of_initial_sync(me: Client, db: Database, rooms: int,
                                     conn_id: str) -> list[str]:
    body = everything(rooms)
    await me.ok("POST", SS, {**body, "conn_id": f"{conn_id}-warm"})  # caches filled
    with counting(db) as seen:
        data = await me.ok("POST", SS, {**body, "conn_id": conn_id})
    assert len(data["rooms"]) == rooms
    assert all(len(room["heroes"]) == 2 for room in data["rooms"].values())
    return [" ".join(s.split()) for s in seen]


async def test_statements_per_initial_sync(http: aiohttp.ClientSession, base: str,
                                           running_school: School) -> None:
    me = await login(http, base, "lehrer")
    others = [await login(http, base, u) for u in ("kollegin", "referendar")]
    await rooms_with_a_message(me, others, 0, 3)
    few = await statements_of_initial_sync(me, running_school.db, 3, "few")
    await rooms_with_a_message(me, others, 3, 5)
    more = await statements_of_initial_sync(me, running_school.db, 8, "more")
    assert any("matrix_room_state" in s for s in few), few  # the counting works
    # None per room: the same statements for 3 rooms and for 8.
    assert len(few) == len(more), (few, more)
    # The timelines, the members, the state (with the heroes' member
    # events: no read of its own), the transaction ids, the bundled relations.
    assert len(more) <= 5, more
