"""``schulhof rooms ...``: the chat rooms the server keeps for the school's groups."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from conf.commands.output import fail

if TYPE_CHECKING:
    from conf.app import School
    from messenger.school_rooms import SchoolRooms


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rooms = sub.add_parser("rooms", help="the chat rooms of the school's groups")
    actions = rooms.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("sync", help="create and update every group's room now "
                                        "(the running server does this every minute)")
    p.set_defaults(handler=sync_rooms)

    p = actions.add_parser("post", help="post a message into a group's room as the school")
    p.add_argument("group")
    p.add_argument("--message", "-m", required=True)
    p.set_defaults(handler=post)

    p = actions.add_parser("export", help="a group room's history as JSON lines "
                                          "(for the school as data controller)")
    p.add_argument("group")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="a new file (mode 0600); default: standard output")
    p.set_defaults(handler=export)


async def sync_rooms(args: argparse.Namespace, school: School) -> int:
    from conf.wiring.matrix import school_rooms

    report = await school_rooms(school).sync_group_rooms()
    print(f"group rooms synced: {report}")
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    return 1 if report.errors else 0


async def post(args: argparse.Namespace, school: School) -> int:
    if not args.message.strip():
        return fail("the message is empty")
    from conf.wiring.matrix import school_rooms

    event_id = await school_rooms(school).post(args.group.lower(), args.message)
    print(f"posted {event_id} to {args.group.lower()}")
    return 0


async def export(args: argparse.Namespace, school: School) -> int:
    from conf.wiring.matrix import school_rooms

    keeper = school_rooms(school)
    if await keeper.room_of_group(args.group.lower()) is None:
        return fail(f"{args.group.lower()} has no room yet (run: schulhof rooms sync)")
    if args.output is None:
        count = await _write(keeper, args.group.lower(), sys.stdout)
    else:
        # The export holds pupils' messages: exclusive create, readable by the admin only.
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return fail(f"{args.output} exists; choose a new file")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            count = await _write(keeper, args.group.lower(), out)
            out.flush()
            os.fsync(out.fileno())
        print(f"exported {count} events of {args.group.lower()} to {args.output}",
              file=sys.stderr)
    return 0


async def _write(keeper: SchoolRooms, group: str, out: TextIO) -> int:
    count = 0
    async for event in keeper.export(group):
        out.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count
