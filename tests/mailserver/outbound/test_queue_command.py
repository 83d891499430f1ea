"""``schulhof queue list|show|retry|delete`` handlers on a real school database.

conf.cli registers the command (lead); here the sub-parser is built on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from conf.app import School
from conf.commands import queue as queue_command
from mailserver.delivery import Envelope
from mailserver.outbound.queue import OutboundQueue


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="schulhof")
    queue_command.register(p.add_subparsers(dest="command", required=True))
    return p


async def run(school: School, *argv: str) -> int:
    args = parser().parse_args(list(argv))
    return await args.handler(args, school)


async def test_list_show_retry_delete(school: School,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    tx = school.mail_store.begin(Envelope("paul@schule.test", dt.datetime.now(dt.UTC)))
    tx.add_remote("anna@b.test")
    tx.add_remote("ben@b.test")
    first, second = (await tx.commit(b"Subject: x\r\n\r\nx\r\n")).queued_ids
    queue = OutboundQueue(school.db)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    [claimed, _] = await queue.claim(dt.datetime.now(dt.UTC), dt.timedelta(hours=1), 2)
    await queue.reschedule([first], later, "451 4.4.1 connection refused")

    assert await run(school, "queue", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "STATE", "ATTEMPTS"]
    rows = {int(line.split()[0]): line.split() for line in out[1:]}
    assert rows[first][1] == "queued" and rows[second][1] == "delivering"
    assert "451 4.4.1 connection refused" in out[1]

    assert await run(school, "queue", "show", str(first)) == 0
    shown = capsys.readouterr().out
    assert "anna@b.test" in shown and "attempts:       1" in shown

    assert await run(school, "queue", "retry", str(first)) == 0
    assert (await queue.get(first)).next_attempt_at <= dt.datetime.now(dt.UTC)
    # In flight: neither retried nor deleted (that could send it twice).
    assert await run(school, "queue", "retry", str(second)) == 1
    assert await run(school, "queue", "delete", str(second)) == 1
    assert await run(school, "queue", "delete", str(first)) == 0
    assert await queue.get(first) is None
    assert await run(school, "queue", "show", str(first)) == 1
    assert claimed.id in (first, second)
