"""``schulhof rooms sync|post|export`` (conf.commands.rooms) against a real database.

The handlers are called directly with parsed arguments: conf.cli registers the
module (the parser is built here from ``register`` the same way)."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from conf.app import School
from conf.commands import rooms
from directory.model import GroupKind, MemberRole, Role


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    rooms.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["rooms", *argv])


@pytest.fixture
async def group(school: School) -> str:
    d = school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer")
    await d.create_account(role=Role.PUPIL, login="anna")
    await d.create_group("5a", kind=GroupKind.CLASS)
    await d.add_member("5a", "lehrer", MemberRole.OWNER)
    await d.add_member("5a", "anna")
    return "5a"


async def run(school: School, *argv: str) -> int:
    args = parse(*argv)
    return await args.handler(args, school)


async def test_sync_post_export(school: School, group: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(school, "export", group) == 1  # no room yet
    assert "no room yet" in capsys.readouterr().err
    assert await run(school, "sync") == 0
    assert "created=1" in capsys.readouterr().out
    assert await run(school, "post", group.upper(), "--message", "Wandertag am Freitag!") == 0
    assert "posted $" in capsys.readouterr().out
    out = tmp_path / "5a.jsonl"
    assert await run(school, "export", group, "--output", str(out)) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["type"] == "m.room.create"
    assert lines[-1]["content"]["body"] == "Wandertag am Freitag!"
    assert {e["state_key"] for e in lines if e["type"] == "m.room.member"} == {
        "@schulhof:schule.test", "@lehrer:schule.test", "@anna:schule.test"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert await run(school, "export", group, "--output", str(out)) == 1  # never overwrite
    capsys.readouterr()
    assert await run(school, "export", group) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(lines)


async def test_post_refuses_empty_message(school: School, group: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(school, "post", group, "--message", "  ") == 1
    assert "empty" in capsys.readouterr().err
