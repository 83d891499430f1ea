"""``schulhof federation status`` on a real school database: one row per
destination with its queue, failures and last error."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from conf.app import School
from conf.commands import federation as federation_command
from federation.matrix.outbox import Outbox


async def run(school: School, *argv: str) -> int:
    p = argparse.ArgumentParser(prog="schulhof")
    federation_command.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(list(argv))
    return await args.handler(args, school)


async def test_status_lists_each_destination(school: School,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    outbox = Outbox(school.db)
    await outbox.enqueue(["b.test"], pdus=[{"n": 1}, {"n": 2}])
    await outbox.enqueue(["c.test"], edus=[{"edu_type": "m.typing"}])
    now = dt.datetime.now(dt.UTC)
    await outbox.failed("b.test", "b.test: ClientConnectorError", now,
                        lambda n: dt.timedelta(minutes=5))
    assert await run(school, "federation", "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["DESTINATION", "QUEUED", "OLDEST", "FAILURES"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["b.test"].split()[1:2] == ["2"] and "ClientConnectorError" in rows["b.test"]
    assert rows["c.test"].split()[1] == "1"
