"""matrix_0005 indexes the relations of events stored before it (SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from conf.migrate import upgrade
from directory.db import Database


async def test_existing_relations_are_indexed_by_the_migration(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db, "matrix_0004")
        events = [
            ("$root", 1, "m.room.message", {"body": "Hallo"}),
            ("$reply", 2, "m.room.message", {"body": "Hi", "m.relates_to": {
                "rel_type": "m.thread", "event_id": "$root"}}),
            ("$like", 3, "m.reaction", {"m.relates_to": {
                "rel_type": "m.annotation", "event_id": "$root", "key": "👍"}}),
            ("$quote", 4, "m.room.message", {"body": "m.relates_to in the text only"}),
            ("$broken", 5, "m.room.message", {"m.relates_to": {"rel_type": 7}}),
        ]
        async with db.write() as session:
            await session.execute(text(
                "INSERT INTO matrix_rooms (room_id, room_version, creator, is_public, "
                "created_at) VALUES ('!r:s', '10', '@a:s', 0, '2026-01-01 00:00:00')"))
            for event_id, position, event_type, content in events:
                await session.execute(text(
                    "INSERT INTO matrix_events (event_id, stream_ordering, room_id, type, "
                    "sender, depth, origin_server_ts, json, redacted) VALUES (:id, :pos, "
                    "'!r:s', :type, '@a:s', :pos, :pos, :json, 0)"),
                    {"id": event_id, "pos": position, "type": event_type,
                     "json": json.dumps({"type": event_type, "content": content})})
        await upgrade(db)
        async with db.read() as session:
            rows = (await session.execute(text(
                "SELECT event_id, relates_to, rel_type, event_type, aggregation_key, "
                "stream_ordering FROM matrix_event_relations ORDER BY stream_ordering"))).all()
        assert [tuple(r) for r in rows] == [
            ("$reply", "$root", "m.thread", "m.room.message", None, 2),
            ("$like", "$root", "m.annotation", "m.reaction", "👍", 3)]
    finally:
        await db.dispose()
