"""``schulhof federation status``: the Matrix federation queue per destination
(queued PDUs/EDUs, the oldest, failures, next retry, last success, last error)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from conf.commands.output import print_table

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    federation = sub.add_parser("federation", help="Matrix federation with other servers")
    actions = federation.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("status", help="the send queue and health per destination")
    p.set_defaults(handler=status)


def _time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


async def status(args: argparse.Namespace, school: School) -> int:
    from federation.matrix.outbox import Outbox

    rows = await Outbox(school.db).status()
    print_table(("DESTINATION", "QUEUED", "OLDEST", "FAILURES", "RETRY_AT", "LAST_SUCCESS",
                 "LAST_ERROR"),
                ((r.destination, r.queued, _time(r.oldest_queued_at), r.failures,
                  _time(r.retry_at), _time(r.last_success_at), r.last_error) for r in rows))
    return 0
