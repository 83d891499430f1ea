"""PostgresBroadcast: LISTEN/NOTIFY between two processes' broadcasters (issue 15).

Runs on PostgreSQL only (SCHULHOF_TEST_DATABASE_URL); two broadcasters in one
process stand for two workers: each has its own connection, as two processes do.
"""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest

from directory.broadcast import MAX_PAYLOAD, LocalBroadcast
from directory.pg_broadcast import PostgresBroadcast, connect_arguments


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY needs PostgreSQL")
    return database_url


async def _until(condition: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not within time")
        await asyncio.sleep(0.02)


async def test_messages_reach_the_other_process_not_the_sender(pg_url: str) -> None:
    one, two = PostgresBroadcast(pg_url), PostgresBroadcast(pg_url)
    got_one: list[str] = []
    got_two: list[str] = []
    one.listen("schulhof_test", got_one.append)
    two.listen("schulhof_test", got_two.append)
    two.listen("schulhof_other", lambda p: got_two.append("other:" + p))
    await one.start()
    await two.start()
    try:
        for n in range(20):
            one.send("schulhof_test", f"m{n}")
        one.send("schulhof_other", "x")
        await _until(lambda: len(got_two) == 21)
        assert got_two == [f"m{n}" for n in range(20)] + ["other:x"]  # in order
        await asyncio.sleep(0.2)
        assert got_one == []  # never its own
    finally:
        await one.stop()
        await two.stop()


async def test_a_lost_connection_runs_the_catch_up_and_queued_sends_go_out(
        pg_url: str) -> None:
    sender, listener = PostgresBroadcast(pg_url), PostgresBroadcast(pg_url)
    received: list[str] = []
    caught_up = asyncio.Event()

    async def catch_up() -> None:
        caught_up.set()

    listener.listen("schulhof_test", received.append)
    listener.on_reconnect(catch_up)
    sender.listen("schulhof_test", lambda _p: None)
    await sender.start()
    await listener.start()
    try:
        # The listener's connection is cut by the server: what is sent meanwhile
        # is lost to it, and only the catch-up can tell it that something happened.
        admin = await asyncpg.connect(**connect_arguments(pg_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)",
                                        listener._server_pid)
            sender.send("schulhof_test", "while away")
            await asyncio.wait_for(caught_up.wait(), 10)
            assert listener.reconnects == 1
            sender.send("schulhof_test", "after")
            await _until(lambda: "after" in received)
            # The sender's connection is cut too: its queued message goes out later.
            assert await admin.fetchval("SELECT pg_terminate_backend($1)",
                                        sender._server_pid)
            await asyncio.sleep(0.05)
            sender.send("schulhof_test", "queued")
            await _until(lambda: "queued" in received, 10)
            assert sender.reconnects == 1
        finally:
            await admin.close()
    finally:
        await sender.stop()
        await listener.stop()


async def test_payload_limit_and_the_local_broadcast() -> None:
    broadcast = PostgresBroadcast("postgresql+asyncpg://u@127.0.0.1/db")
    with pytest.raises(ValueError):
        broadcast.send("c", "x" * (MAX_PAYLOAD + 1))
    local = LocalBroadcast()
    local.listen("c", lambda _p: None)
    local.send("c", "nobody hears this")
    assert local.shared is False
