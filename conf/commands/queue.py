"""``schulhof queue list|show ID|retry ID|delete ID``: the outbound mail queue.

``retry`` makes a waiting row due now (the running server picks it up at its
next poll); ``delete`` drops a row that is not being delivered this moment,
without a bounce.  Rows in flight are refused by both, so an admin never
causes a duplicate.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from conf.commands.output import fail, print_table
from mailserver.outbound.queue import (
    BOUNCED,
    DELIVERING,
    QUEUED,
    SENT,
    OutboundQueue,
    QueueEntry,
)

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    queue = sub.add_parser("queue", help="inspect and manage the outbound mail queue")
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="list waiting messages (per recipient)")
    p.add_argument("--all", action="store_true", help="also sent and bounced rows")
    p.set_defaults(handler=list_queue)

    p = actions.add_parser("show", help="show one queue entry")
    p.add_argument("id", type=int)
    p.set_defaults(handler=show_entry)

    p = actions.add_parser("retry", help="try a waiting entry again now")
    p.add_argument("id", type=int)
    p.set_defaults(handler=retry_entry)

    p = actions.add_parser("delete", help="drop a waiting entry (no bounce is sent)")
    p.add_argument("id", type=int)
    p.set_defaults(handler=delete_entry)


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


async def list_queue(args: argparse.Namespace, school: School) -> int:
    states = (QUEUED, DELIVERING, SENT, BOUNCED) if args.all else (QUEUED, DELIVERING)
    entries = await OutboundQueue(school.db).entries(states)
    print_table(("ID", "STATE", "ATTEMPTS", "NEXT", "FROM", "TO", "LAST_ERROR"),
                ((e.id, e.state, e.attempts, _time(e.next_attempt_at), e.mail_from or "<>",
                  e.recipient, e.last_error or "") for e in entries))
    return 0


def _details(entry: QueueEntry) -> list[tuple[str, str]]:
    return [("id", str(entry.id)), ("state", entry.state),
            ("from", entry.mail_from or "<>"), ("to", entry.recipient),
            ("queued", _time(entry.created_at)), ("attempts", str(entry.attempts)),
            ("next attempt", _time(entry.next_attempt_at)),
            ("delay warning", _time(entry.delay_warned_at) or "not sent"),
            ("last error", entry.last_error or ""), ("body", entry.blob_id)]


async def show_entry(args: argparse.Namespace, school: School) -> int:
    entry = await OutboundQueue(school.db).get(args.id)
    if entry is None:
        return fail(f"no queue entry {args.id}")
    for name, value in _details(entry):
        print(f"{name + ':':15} {value}")
    return 0


async def retry_entry(args: argparse.Namespace, school: School) -> int:
    if not await OutboundQueue(school.db).retry_now(args.id, dt.datetime.now(dt.UTC)):
        return fail(f"queue entry {args.id} is not waiting (unknown, in flight or finished)")
    print(f"queue entry {args.id} will be tried now")
    return 0


async def delete_entry(args: argparse.Namespace, school: School) -> int:
    if not await OutboundQueue(school.db).delete(args.id):
        return fail(f"queue entry {args.id} is unknown or being delivered right now")
    print(f"deleted queue entry {args.id}")
    return 0
